import Foundation

/// A team's rule: "クレーム or 返金 in an email → urgent". Lists mean "any of"; every non-empty
/// condition must hold.
public struct PriorityRule: Sendable, Equatable {
    public var id: UUID
    public var name: String
    public var priority: Ticket.Priority
    public var keywords: [String]
    public var channels: [Channel]
    public var categories: [String]
    public var vipOnly: Bool
    public var requiresApproval: Bool
}

/// Picks the priority a new ticket deserves from what it says and who sent it.
enum PriorityRules {
    struct Match: Equatable {
        var rule: PriorityRule
        /// Why, for the ticket's `priority_reason`: "rule 返金・クレーム: keyword クレーム".
        var reason: String
    }

    struct Subject {
        var subject: String
        var body: String
        var channel: Channel
        var category: String?
        var isVIP: Bool
    }

    /// The matching rule with the highest priority (ties go to the first by name), or nil.
    static func evaluate(_ rules: [PriorityRule], for ticket: Subject) -> Match? {
        let text = fold(ticket.subject + "\n" + ticket.body)
        let rank: (Ticket.Priority) -> Int = { Ticket.Priority.allCases.firstIndex(of: $0) ?? 0 }
        var best: Match?
        for rule in rules.sorted(by: { $0.name < $1.name }) {
            var why: [String] = []
            if !rule.keywords.isEmpty {
                guard let keyword = rule.keywords.first(where: { !$0.isEmpty && text.contains(fold($0)) }) else { continue }
                why.append("keyword \(keyword)")
            }
            if !rule.channels.isEmpty {
                guard rule.channels.contains(ticket.channel) else { continue }
                why.append("channel \(ticket.channel.rawValue)")
            }
            if !rule.categories.isEmpty {
                guard let category = ticket.category, rule.categories.contains(category) else { continue }
                why.append("category \(category)")
            }
            if rule.vipOnly {
                guard ticket.isVIP else { continue }
                why.append("VIP customer")
            }
            if let current = best, rank(current.rule.priority) >= rank(rule.priority) { continue }
            best = Match(rule: rule, reason: "rule \(rule.name): " + why.joined(separator: ", "))
        }
        return best
    }

    /// Full-width and half-width forms alike (ＡＢＣ = ABC, ｸﾚｰﾑ = クレーム), case folded.
    static func fold(_ text: String) -> String {
        text.precomposedStringWithCompatibilityMapping.lowercased()
    }
}
