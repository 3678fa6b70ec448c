import Foundation
import Logging
import PostgresNIO

/// Whose tickets these are: the writes a customer merge and a new ticket's rules make.
extension TicketStore {
    /// Moves every ticket of customer `other` to `target` (a customer merge); returns how many.
    func moveCustomer(from other: UUID, to target: UUID, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("""
            UPDATE tickets SET customer_id = \(target), version = version + 1, updated_at = now() WHERE customer_id = \(other) RETURNING id
            """, logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    /// What a new ticket's rules decided (`Rules.evaluate`): the priority raised to `raisingTo`'s
    /// (never lowered), the queue with its SLA policy, category, tags added, required skill, approval,
    /// and the reasons on the ticket.
    func route(_ ticketID: UUID, raisingTo raiseTo: Rules.Match?, _ outcome: Rules.Outcome, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE tickets t
            SET priority = coalesce(\(raiseTo?.rule.priority?.rawValue), t.priority),
                priority_reason = coalesce(\(raiseTo?.reason), t.priority_reason),
                approval_rule = coalesce(\(outcome.approval?.rule.name), t.approval_rule),
                queue = coalesce(\(outcome.queue), t.queue),
                sla_policy_id = coalesce((SELECT q.sla_policy_id FROM queues q WHERE q.name = \(outcome.queue)), t.sla_policy_id),
                category = coalesce(\(outcome.category), t.category),
                tags = t.tags || ARRAY(SELECT added FROM unnest(\(outcome.tags)::text[]) AS added WHERE NOT added = ANY (t.tags)),
                required_skill = coalesce(\(outcome.requiredSkill), t.required_skill),
                routing_reason = coalesce(left(\(outcome.routingReason), 2000), t.routing_reason),
                version = t.version + 1, updated_at = now()
            WHERE t.id = \(ticketID)
            """, logger: logger)
    }
}
