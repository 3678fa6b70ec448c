import Foundation
import Logging
import PostgresNIO

/// The SQL behind priority rules, and their application to a ticket.
struct RuleStore: Sendable {
    let logger: Logger

    static let columns = "id, name, priority, keywords, channels::text[] AS channels, categories, vip_only, requires_approval, active"

    func list(activeOnly: Bool = false, on connection: PostgresConnection) async throws -> [(PriorityRule, active: Bool)] {
        let rows = try await connection.query("""
            SELECT \(unescaped: Self.columns) FROM priority_rules WHERE active OR NOT \(activeOnly) ORDER BY name
            """, logger: logger)
        var rules: [(PriorityRule, Bool)] = []
        for try await row in rows { rules.append(try Self.rule(row)) }
        return rules
    }

    func save(id: UUID?, rule: PriorityRule, active: Bool, on connection: PostgresConnection) async throws -> (PriorityRule, active: Bool) {
        let channels = rule.channels.map(\.rawValue)
        do {
            let rows: PostgresRowSequence
            if let id {
                rows = try await connection.query("""
                    UPDATE priority_rules SET name = \(rule.name), priority = \(rule.priority.rawValue), keywords = \(rule.keywords),
                        channels = \(channels), categories = \(rule.categories), vip_only = \(rule.vipOnly),
                        requires_approval = \(rule.requiresApproval), active = \(active), updated_at = now()
                    WHERE id = \(id) RETURNING \(unescaped: Self.columns)
                    """, logger: logger)
            } else {
                rows = try await connection.query("""
                    INSERT INTO priority_rules (name, priority, keywords, channels, categories, vip_only, requires_approval, active)
                    VALUES (\(rule.name), \(rule.priority.rawValue), \(rule.keywords), \(channels), \(rule.categories), \(rule.vipOnly),
                            \(rule.requiresApproval), \(active))
                    RETURNING \(unescaped: Self.columns)
                    """, logger: logger)
            }
            for try await row in rows { return try Self.rule(row) }
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "name-taken"), status: .conflict, title: "Name taken", detail: "Another rule is called \(rule.name).")
        }
        throw Problem.notFound("There is no rule \(id?.uuidString.lowercased() ?? "").")
    }

    /// Raises a newly opened ticket's priority to what the active rules say, recording the reason and,
    /// for a rule that asks for it, that its replies need approval. Ingest calls this in the transaction
    /// that opens the ticket. Never lowers a priority someone set.
    func prioritize(ticketID: UUID, subject: String, body: String, on connection: PostgresConnection) async throws -> PriorityRules.Match? {
        let rules = try await list(activeOnly: true, on: connection).map(\.0)
        guard !rules.isEmpty else { return nil }
        let rows = try await connection.query("""
            SELECT t.channel, t.category, t.priority, c.is_vip, t.customer_id
            FROM tickets t JOIN customers c ON c.id = t.customer_id WHERE t.id = \(ticketID)
            """, logger: logger)
        for try await (channel, category, current, vip, customerID) in rows.decode((String, String?, String, Bool, UUID).self) {
            guard let channel = Channel(rawValue: channel), let current = Ticket.Priority(rawValue: current) else { return nil }
            guard let match = PriorityRules.evaluate(rules, for: .init(subject: subject, body: body, channel: channel, category: category, isVIP: vip))
            else { return nil }
            let all = Ticket.Priority.allCases
            let raise = all.firstIndex(of: match.rule.priority)! > all.firstIndex(of: current)!
            try await connection.query("""
                UPDATE tickets
                SET priority = CASE WHEN \(raise) THEN \(match.rule.priority.rawValue) ELSE priority END,
                    priority_reason = CASE WHEN \(raise) THEN \(match.reason) ELSE priority_reason END,
                    approval_rule = CASE WHEN \(match.rule.requiresApproval) THEN \(match.rule.name) ELSE approval_rule END,
                    version = version + 1, updated_at = now()
                WHERE id = \(ticketID)
                """, logger: logger)
            try await EventStore(logger: logger).record(
                .ticketPrioritized, ticketID: ticketID, customerID: customerID, actor: nil,
                data: ["rule": match.rule.name, "priority": match.rule.priority.rawValue, "raised": raise, "reason": match.reason,
                       "requires_approval": match.rule.requiresApproval], on: connection)
            return match
        }
        return nil
    }

    private static func rule(_ row: PostgresRow) throws -> (PriorityRule, Bool) {
        let row = row.makeRandomAccess()
        let rule = PriorityRule(
            id: try row.value("id"), name: try row.value("name"), priority: try Ticket.enumeration(row.value("priority")),
            keywords: try row.value("keywords"),
            channels: try (row.value("channels") as [String]).compactMap(Channel.init(rawValue:)),
            categories: try row.value("categories"), vipOnly: try row.value("vip_only"),
            requiresApproval: try row.value("requires_approval"))
        return (rule, try row.value("active"))
    }
}
