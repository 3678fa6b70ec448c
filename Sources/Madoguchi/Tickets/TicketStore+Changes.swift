import Foundation
import Logging
import PostgresNIO

/// What a person sets on a ticket (`PATCH /v1/tickets/{id}`, through `TicketWork.update`).
extension TicketStore {
    /// A locked ticket's fields as they are to be: every one written, changed or not.
    struct Fields: Sendable {
        var status: Ticket.Status
        var priority: Ticket.Priority
        var queue: String?
        var category: String?
        var tags: [String]
        var assigneeID: UUID?
        /// The customer needs no reply: the wait ends without an answer.
        var endsWait: Bool
        /// The claim goes (handed to someone else, or lapsed).
        var dropsClaim: Bool
    }

    /// Writes `fields` to the locked ticket. A queue or agent that does not exist is PostgreSQL's
    /// foreign-key violation (`tickets_queue_known`, or the assignee's), thrown as it is.
    func apply(_ fields: Fields, to ticketID: UUID, on connection: PostgresConnection) async throws -> Ticket {
        let rows = try await connection.run("""
            UPDATE tickets
            SET status = \(fields.status.rawValue), priority = \(fields.priority.rawValue), queue = \(fields.queue),
                category = \(fields.category), tags = \(fields.tags), assignee_id = \(fields.assigneeID),
                -- Moved to another queue: that queue's SLA policy, as a rule routing it there
                -- gives, or the default one, or none when there is neither (the old queue's policy,
                -- kept, held the ticket to a promise its new queue does not make). The clocks are
                -- recomputed by the trigger.
                sla_policy_id = CASE WHEN \(fields.queue) IS DISTINCT FROM queue
                                     THEN coalesce((SELECT q.sla_policy_id FROM queues q WHERE q.name = \(fields.queue)),
                                                   (SELECT p.id FROM sla_policies p WHERE p.is_default))
                                     ELSE sla_policy_id END,
                awaiting_reply_since = CASE WHEN \(fields.endsWait) THEN NULL ELSE awaiting_reply_since END,
                solved_at = CASE WHEN \(fields.status.rawValue) = 'solved' THEN coalesce(solved_at, now()) ELSE NULL END,
                closed_at = CASE WHEN \(fields.status.rawValue) = 'closed' THEN coalesce(closed_at, now()) ELSE NULL END,
                claim_agent_id = CASE WHEN \(fields.dropsClaim) THEN NULL ELSE claim_agent_id END,
                claim_expires_at = CASE WHEN \(fields.dropsClaim) THEN NULL ELSE claim_expires_at END,
                version = version + 1, updated_at = now()
            WHERE id = \(ticketID)
            RETURNING \(unescaped: Ticket.columns)
            """, logger: logger)
        return try await Self.single(rows)
    }

    /// Stops the clocks of every open ticket policy `policyID` runs (the policy is being deleted),
    /// locking them in id order. Each with the due times that went, as a `ticket.updated` names them
    /// (`sla_due_change`); empty when none was set.
    func stopClocks(ofPolicy policyID: UUID, on connection: PostgresConnection) async throws -> [(ticketID: UUID, customerID: UUID, version: Int64, changes: [String: Any])] {
        let rows = try await connection.run("""
            WITH locked AS MATERIALIZED (
                SELECT t.id, t.first_response_due_at, t.next_response_due_at, t.resolution_due_at
                FROM tickets t
                WHERE t.sla_policy_id = \(policyID) AND t.status NOT IN ('solved', 'closed')
                ORDER BY t.id
                FOR UPDATE
            ), stopped AS (
                UPDATE tickets t
                SET sla_policy_id = NULL, first_response_due_at = NULL, first_response_warn_at = NULL,
                    next_response_due_at = NULL, next_response_warn_at = NULL, resolution_due_at = NULL, resolution_warn_at = NULL,
                    sla_paused_at = NULL, resolution_paused_at = NULL, version = t.version + 1, updated_at = now()
                FROM locked WHERE t.id = locked.id
                RETURNING t.id, t.customer_id, t.version,
                          sla_due_change('first_response_due_at', locked.first_response_due_at, NULL)
                          || sla_due_change('next_response_due_at', locked.next_response_due_at, NULL)
                          || sla_due_change('resolution_due_at', locked.resolution_due_at, NULL) AS changes
            )
            -- In id order, as they were locked: the events come out in that order.
            SELECT id, customer_id, version, changes::text FROM stopped ORDER BY id
            """, logger: logger)
        var stopped: [(UUID, UUID, Int64, [String: Any])] = []
        for try await (id, customerID, version, changes) in rows.decode((UUID, UUID, Int64, String).self) {
            let object = try JSONSerialization.jsonObject(with: Data(changes.utf8)) as? [String: Any] ?? [:]
            stopped.append((id, customerID, version, object))
        }
        return stopped
    }
}
