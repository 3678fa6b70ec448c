import Foundation
import Logging
import PostgresNIO

/// The SQL behind rules, and their application to a new ticket.
struct RuleStore: Sendable {
    let logger: Logger

    static let columns = "id, " + columnsBesideID
    private static let columnsBesideID = """
        name, position, keywords, channels::text[] AS channels, categories, recipients, vip_only, priority, requires_approval,
        set_queue, set_category, add_tags, set_skill, active, version
        """

    func list(activeOnly: Bool = false, on connection: PostgresConnection) async throws -> [(Rule, active: Bool)] {
        let rows = try await connection.run("""
            SELECT \(unescaped: Self.columns) FROM rules WHERE active OR NOT \(activeOnly) ORDER BY position, name COLLATE "C"
            """, logger: logger)
        var rules: [(Rule, Bool)] = []
        for try await row in rows { rules.append(try Self.rule(row)) }
        return rules
    }

    /// The rule's version, its row locked until the caller's transaction ends (for `If-Match`); nil if none.
    func lockedVersion(id: UUID, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version FROM rules WHERE id = \(id) FOR NO KEY UPDATE", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return nil
    }

    /// Creates (`id` nil) or replaces a rule. A rule given no position runs after every other.
    func save(id: UUID?, rule: Rule, position: Int?, active: Bool, on connection: PostgresConnection) async throws -> (Rule, active: Bool) {
        let channels = rule.channels.map(\.rawValue)
        let priority = rule.priority?.rawValue
        do {
            let rows: PostgresRowSequence
            if let id {
                rows = try await connection.run("""
                    UPDATE rules SET name = \(rule.name), position = coalesce(\(position), position), keywords = \(rule.keywords),
                        channels = \(channels), categories = \(rule.categories), recipients = \(rule.recipients), vip_only = \(rule.vipOnly),
                        priority = \(priority), requires_approval = \(rule.requiresApproval), set_queue = \(rule.queue),
                        set_category = \(rule.category), add_tags = \(rule.tags), set_skill = \(rule.requiredSkill),
                        active = \(active), version = version + 1, updated_at = now()
                    WHERE id = \(id) RETURNING \(unescaped: Self.columns)
                    """, logger: logger)
            } else {
                rows = try await connection.run("""
                    INSERT INTO rules (name, position, keywords, channels, categories, recipients, vip_only, priority, requires_approval,
                                       set_queue, set_category, add_tags, set_skill, active)
                    VALUES (\(rule.name), coalesce(\(position), (SELECT least(coalesce(max(position), 0) + 1, 100000) FROM rules)), \(rule.keywords),
                            \(channels), \(rule.categories), \(rule.recipients), \(rule.vipOnly), \(priority), \(rule.requiresApproval),
                            \(rule.queue), \(rule.category), \(rule.tags), \(rule.requiredSkill), \(active))
                    RETURNING \(unescaped: Self.columns)
                    """, logger: logger)
            }
            for try await row in rows { return try Self.rule(row) }
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "name-taken"), status: .conflict, title: "Name taken", detail: "Another rule is called \(rule.name).")
        } catch where error.sqlState == .foreignKeyViolation {
            throw QueueStore.unknownQueue(rule.queue ?? "", pointer: "/queue")
        }
        throw Problem.notFound("There is no rule \(id?.uuidString.lowercased() ?? "").")
    }

    /// What the statement opening a ticket reads beside its insert so the rules cost no round trip
    /// of their own: the ticket's facts the rules test, and every active rule in order, one row each
    /// (one row of NULL rule columns when there is none). `opened` is the CTE holding the new ticket;
    /// its id stays `id`, as every insert returns it, and the rule's is `rule_id`.
    static let openedTicketWithActiveRules = """
        SELECT opened.id, opened.number AS ticket_number, opened.category AS ticket_category,
               opened.priority AS ticket_priority, opened_customer.is_vip AS customer_is_vip, active_rule.*
        FROM opened JOIN customers opened_customer ON opened_customer.id = opened.customer_id
        LEFT JOIN LATERAL (SELECT id AS rule_id, \(columnsBesideID) FROM rules WHERE active) AS active_rule ON true
        ORDER BY active_rule.position, active_rule.name COLLATE "C"
        """

    /// The ticket and rules one row of `openedTicketWithActiveRules` holds.
    static func openedTicket(_ row: PostgresRow) throws -> (id: UUID, number: Int64, facts: OpenedTicket, rule: Rule?) {
        let columns = row.makeRandomAccess()
        let facts = OpenedTicket(
            category: try columns.value("ticket_category"), priority: try Ticket.enumeration(try columns.value("ticket_priority") as String),
            isVIP: try columns.value("customer_is_vip"))
        let rule = try (columns.value("rule_id") as UUID?) == nil ? nil : Self.rule(row, idColumn: "rule_id").0
        return (try columns.value("id"), try columns.value("ticket_number"), facts, rule)
    }

    /// What a rule tests of a ticket just opened, as the insert returned it.
    struct OpenedTicket: Sendable {
        var category: String?
        var priority: Ticket.Priority
        var isVIP: Bool
    }

    /// Applies the active `rules` (read by the statement that opened the ticket, so they are the ones
    /// its transaction sees) to a ticket just opened, in that transaction: raises its priority (never
    /// lowers one), routes it (queue, and the queue's SLA policy; category; tags; required skill),
    /// marks it for approval, and records why on the ticket and in events.
    @discardableResult
    func apply(
        _ rules: [Rule], ticketID: UUID, customerID: UUID, channel: Channel, facts: OpenedTicket, subject: String, body: String,
        recipients: [String], on connection: PostgresConnection
    ) async throws -> Rules.Outcome? {
        guard !rules.isEmpty else { return nil }
        let current = facts.priority
        let outcome = Rules.evaluate(
            rules, for: .init(subject: subject, body: body, channel: channel, category: facts.category, recipients: recipients, isVIP: facts.isVIP))
        guard outcome.priority != nil || !outcome.routing.isEmpty else { return outcome }
        let all = Ticket.Priority.allCases
        let raiseTo = outcome.priority.flatMap { match in
            all.firstIndex(of: match.rule.priority!)! > all.firstIndex(of: current)! ? match : nil
        }
        try await TicketStore(logger: logger).route(ticketID, raisingTo: raiseTo, outcome, on: connection)
        let events = EventStore(logger: logger)
        if let match = outcome.priority {
            // The approval any matching rule asked for, not only the priority's winner: a VIP rule
            // (high, approval) losing the priority to a クレーム rule (urgent) still made the ticket
            // need approval, and a ticket.routed is written only when a rule routes.
            var data: [String: Any] = ["rule": match.rule.name, "priority": match.rule.priority!.rawValue, "raised": raiseTo != nil,
                                       "reason": match.reason, "requires_approval": outcome.approval != nil]
            if let approval = outcome.approval { data["approval_rule"] = approval.rule.name }
            try await events.record(.ticketPrioritized, ticketID: ticketID, customerID: customerID, actor: nil, data: data, on: connection)
        }
        if let reason = outcome.routingReason {
            var data: [String: Any] = ["rules": outcome.routing.map(\.rule.name), "reason": reason]
            if let queue = outcome.queue { data["queue"] = queue }
            if let category = outcome.category { data["category"] = category }
            if !outcome.tags.isEmpty { data["tags"] = outcome.tags }
            if let skill = outcome.requiredSkill { data["required_skill"] = skill }
            if let approval = outcome.approval { data["approval_rule"] = approval.rule.name }
            try await events.record(.ticketRouted, ticketID: ticketID, customerID: customerID, actor: nil, data: data, on: connection)
        }
        return outcome
    }

    private static func rule(_ row: PostgresRow, idColumn: String = "id") throws -> (Rule, Bool) {
        let row = row.makeRandomAccess()
        let rule = Rule(
            id: try row.value(idColumn), name: try row.value("name"), position: Int(try row.value("position") as Int32),
            keywords: try row.value("keywords"),
            channels: try (row.value("channels") as [String]).compactMap(Channel.init(rawValue:)),
            categories: try row.value("categories"), recipients: try row.value("recipients"), vipOnly: try row.value("vip_only"),
            priority: try (row.value("priority") as String?).map { try Ticket.enumeration($0) },
            requiresApproval: try row.value("requires_approval"), queue: try row.value("set_queue"),
            category: try row.value("set_category"), tags: try row.value("add_tags"), requiredSkill: try row.value("set_skill"),
            version: try row.value("version"))
        return (rule, try row.value("active"))
    }
}
