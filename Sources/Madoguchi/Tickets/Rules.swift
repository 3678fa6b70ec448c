import Foundation

/// A team's rule, applied to every ticket as it is opened: conditions on what the message says and
/// where it came from, actions that prioritize ("クレーム or 返金 in an email → urgent") and route
/// (振り分け: "mail to returns@ → the returns queue"). Lists mean "any of"; every non-empty condition
/// must hold.
public struct Rule: Sendable, Equatable {
    public var id: UUID
    public var name: String
    /// Rules run in this order (then by name).
    public var position: Int

    // Conditions
    public var keywords: [String]
    public var channels: [Channel]
    public var categories: [String]
    /// "returns@shop.example", or "returns@" for that mailbox at any domain.
    public var recipients: [String]
    public var vipOnly: Bool

    // Actions
    public var priority: Ticket.Priority?
    public var requiresApproval: Bool
    public var queue: String?
    public var category: String?
    public var tags: [String]
    public var requiredSkill: String?
    /// Raised by every replacement; the rule's ETag.
    public var version: Int64 = 1

    var hasCondition: Bool { !keywords.isEmpty || !channels.isEmpty || !categories.isEmpty || !recipients.isEmpty || vipOnly }
    var hasAction: Bool { priority != nil || requiresApproval || queue != nil || category != nil || !tags.isEmpty || requiredSkill != nil }
    /// Reported as routing (`ticket.routed`): a rule that only sets a priority, with or without
    /// approval, is reported as prioritizing (`ticket.prioritized`) instead.
    var routes: Bool { queue != nil || category != nil || !tags.isEmpty || requiredSkill != nil || (requiresApproval && priority == nil) }
}

/// The one rule engine: what the active rules do to a new ticket.
///
/// Rules run in `position` order, each seeing the ticket as the rules before it left it (a rule can
/// match on the category an earlier rule set). The priority is the highest any matching rule names
/// (ties go to the earlier rule); queue, category and required skill come from the first matching
/// rule that sets one, so order decides conflicts; tags are every matching rule's.
enum Rules {
    struct Subject {
        var subject: String
        var body: String
        var channel: Channel
        var category: String?
        /// Where the message was sent: To and Cc of a mail, the number or account of a text.
        var recipients: [String] = []
        var isVIP: Bool
    }

    struct Match: Equatable {
        var rule: Rule
        /// Why, as shown on the ticket: "rule 返金・クレーム: keyword クレーム".
        var reason: String
    }

    struct Outcome: Equatable {
        /// The match that sets the priority, if any rule names one.
        var priority: Match?
        /// The first matching rule that asks for replies to be approved.
        var approval: Match?
        var queue: String?
        var category: String?
        var tags: [String] = []
        var requiredSkill: String?
        /// The matches that routed (set a queue, category, tags or skill, or only asked for approval), in order.
        var routing: [Match] = []

        var routingReason: String? { routing.isEmpty ? nil : routing.map(\.reason).joined(separator: "; ") }
    }

    /// How much of a body the keywords are looked for in: what a customer asks is at the top, and a
    /// 20 MB mail's text, folded and searched once per keyword of every rule, would hold the
    /// transaction opening its ticket for seconds.
    static let searchedCharacters = 100_000

    static func evaluate(_ rules: [Rule], for ticket: Subject) -> Outcome {
        let text = fold(ticket.subject + "\n" + ticket.body.prefix(searchedCharacters))
        let recipients = ticket.recipients.map { $0.lowercased() }
        let rank: (Ticket.Priority) -> Int = { Ticket.Priority.allCases.firstIndex(of: $0) ?? 0 }
        var outcome = Outcome()
        var category = ticket.category
        // In the order `GET /v1/rules` lists them: by position, then name by code point (the store
        // sorts names COLLATE "C", whatever the database's collation).
        let ordered = rules.sorted {
            $0.position != $1.position ? $0.position < $1.position : $0.name.unicodeScalars.lexicographicallyPrecedes($1.name.unicodeScalars)
        }
        for rule in ordered {
            guard let why = reasons(rule, text: text, recipients: recipients, ticket: ticket, category: category) else { continue }
            let match = Match(rule: rule, reason: "rule \(rule.name): " + why.joined(separator: ", "))
            if let priority = rule.priority, outcome.priority.map({ rank($0.rule.priority!) < rank(priority) }) ?? true {
                outcome.priority = match
            }
            if rule.requiresApproval, outcome.approval == nil { outcome.approval = match }
            if outcome.queue == nil { outcome.queue = rule.queue }
            if outcome.category == nil, let set = rule.category {
                outcome.category = set
                category = set
            }
            if outcome.requiredSkill == nil { outcome.requiredSkill = rule.requiredSkill }
            for tag in rule.tags where !outcome.tags.contains(tag) { outcome.tags.append(tag) }
            if rule.routes { outcome.routing.append(match) }
        }
        return outcome
    }

    /// What made `rule` match, or nil when a condition fails.
    private static func reasons(_ rule: Rule, text: String, recipients: [String], ticket: Subject, category: String?) -> [String]? {
        var why: [String] = []
        if !rule.keywords.isEmpty {
            guard let keyword = rule.keywords.first(where: { !$0.isEmpty && text.contains(fold($0)) }) else { return nil }
            why.append("keyword \(keyword)")
        }
        if !rule.channels.isEmpty {
            guard rule.channels.contains(ticket.channel) else { return nil }
            why.append("channel \(ticket.channel.rawValue)")
        }
        if !rule.categories.isEmpty {
            guard let category, rule.categories.contains(category) else { return nil }
            why.append("category \(category)")
        }
        if !rule.recipients.isEmpty {
            guard let address = recipients.first(where: { address in rule.recipients.contains { matches(address, $0) } }) else { return nil }
            why.append("recipient \(address)")
        }
        if rule.vipOnly {
            guard ticket.isVIP else { return nil }
            why.append("VIP customer")
        }
        return why
    }

    /// "returns@" is that mailbox at any domain; anything else is the whole address. Both lower-cased.
    static func matches(_ address: String, _ condition: String) -> Bool {
        let condition = condition.lowercased()
        return condition.hasSuffix("@") ? address.hasPrefix(condition) : address == condition
    }

    /// Full-width and half-width forms alike (ＡＢＣ = ABC, ｸﾚｰﾑ = クレーム), case folded.
    static func fold(_ text: String) -> String {
        text.precomposedStringWithCompatibilityMapping.lowercased()
    }
}
