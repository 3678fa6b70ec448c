import Foundation
import Logging
import PostgresNIO

/// A ticket merged into another of the same customer's (`TicketWork.merge` locks both first): the
/// survivor takes over the duplicate's wait and clocks, and the duplicate closes, pointing at it.
extension TicketStore {
    /// The survivor after taking over what the duplicate's customer was waiting for.
    /// `carried`: the duplicate's resolution clock goes on in the survivor (`TicketWork.merge`).
    func takeOverWait(of duplicateID: UUID, into survivorID: UUID, carriesResolution carried: Bool, on connection: PostgresConnection) async throws -> Ticket {
        // First the survivor, from the duplicate as it stands. A customer waiting on the duplicate
        // waits on the survivor from whichever wait began first, with the earlier due times of the
        // clocks both had running, and reopens it if it was pending or solved (as their message
        // would have): otherwise no queue would offer it while the unanswered guard listed it.
        // And the other way round: a duplicate answered after every customer message of both
        // tickets (they wrote twice, and were answered on the second) leaves nobody waiting on the
        // merged timeline, whose latest customer message has a later reply; the survivor kept its
        // own wait, a false 返信漏れ and a first-response clock running for an answered customer.
        var continued = try await Self.single(connection.run("""
            UPDATE tickets t
            SET awaiting_reply_since = CASE WHEN d.awaiting_reply_since IS NOT NULL THEN least(t.awaiting_reply_since, d.awaiting_reply_since)
                                            WHEN answered.since_every_message THEN NULL
                                            ELSE t.awaiting_reply_since END,
                first_responded_at = CASE WHEN answered.since_every_message THEN coalesce(t.first_responded_at, d.last_responded_at)
                                          ELSE t.first_responded_at END,
                last_responded_at = CASE WHEN answered.since_every_message THEN greatest(t.last_responded_at, d.last_responded_at)
                                         ELSE t.last_responded_at END,
                first_response_due_at = CASE WHEN t.first_responded_at IS NULL AND d.first_responded_at IS NULL AND d.awaiting_reply_since IS NOT NULL
                                             THEN least(t.first_response_due_at, d.first_response_due_at) ELSE t.first_response_due_at END,
                first_response_warn_at = CASE WHEN t.first_responded_at IS NULL AND d.first_responded_at IS NULL AND d.awaiting_reply_since IS NOT NULL
                                              THEN least(t.first_response_warn_at, d.first_response_warn_at) ELSE t.first_response_warn_at END,
                next_response_due_at = CASE WHEN t.awaiting_reply_since IS NOT NULL AND d.awaiting_reply_since IS NOT NULL
                                            THEN least(t.next_response_due_at, d.next_response_due_at) ELSE t.next_response_due_at END,
                next_response_warn_at = CASE WHEN t.awaiting_reply_since IS NOT NULL AND d.awaiting_reply_since IS NOT NULL
                                             THEN least(t.next_response_warn_at, d.next_response_warn_at) ELSE t.next_response_warn_at END,
                resolution_due_at = CASE WHEN \(carried) THEN least(t.resolution_due_at, d.resolution_due_at) ELSE t.resolution_due_at END,
                resolution_warn_at = CASE WHEN \(carried) THEN least(t.resolution_warn_at, d.resolution_warn_at) ELSE t.resolution_warn_at END,
                resolution_since = CASE WHEN \(carried)
                                        THEN nullif(least(coalesce(t.resolution_since, t.created_at), coalesce(d.resolution_since, d.created_at)), t.created_at)
                                        ELSE t.resolution_since END,
                status = CASE WHEN d.awaiting_reply_since IS NOT NULL AND t.status IN ('pending', 'solved') THEN 'open' ELSE t.status END,
                solved_at = CASE WHEN d.awaiting_reply_since IS NOT NULL AND t.status IN ('pending', 'solved') THEN NULL ELSE t.solved_at END,
                last_customer_message_at = greatest(t.last_customer_message_at, d.last_customer_message_at),
                -- A rule that asked for approval on the duplicate (a complaint) still asks: its drafts
                -- come along, and the conversation is the same one.
                approval_rule = coalesce(t.approval_rule, d.approval_rule),
                version = t.version + 1, updated_at = now()
            FROM tickets d
            CROSS JOIN LATERAL (
                SELECT d.awaiting_reply_since IS NULL AND d.last_responded_at
                       >= greatest((SELECT s.last_customer_message_at FROM tickets s WHERE s.id = \(survivorID)), d.last_customer_message_at)
                       AS since_every_message
            ) AS answered
            WHERE t.id = \(survivorID) AND d.id = \(duplicateID)
            RETURNING \(unescaped: Ticket.columns(of: "t"))
            """, logger: logger))
        // Then the response clock the survivor now runs (first response if never answered, next
        // response if answered) is due no later than the one the duplicate ran, whichever that was:
        // answered and waiting again, the survivor kept its own later next-response time while the
        // duplicate's first response was an hour overdue, and merging erased the breach. Set after
        // the statement above, whose trigger pushes a pending survivor's clocks back by its pause
        // (the duplicate's were not paused). A paused duplicate's clock is not carried.
        let carriedWait = try await connection.run("""
            UPDATE tickets t
            SET first_response_due_at = CASE WHEN t.first_responded_at IS NULL THEN least(t.first_response_due_at, r.due) ELSE t.first_response_due_at END,
                first_response_warn_at = CASE WHEN t.first_responded_at IS NULL THEN least(t.first_response_warn_at, r.warn) ELSE t.first_response_warn_at END,
                next_response_due_at = CASE WHEN t.first_responded_at IS NOT NULL AND t.awaiting_reply_since IS NOT NULL
                                            THEN least(t.next_response_due_at, r.due) ELSE t.next_response_due_at END,
                next_response_warn_at = CASE WHEN t.first_responded_at IS NOT NULL AND t.awaiting_reply_since IS NOT NULL
                                             THEN least(t.next_response_warn_at, r.warn) ELSE t.next_response_warn_at END
            FROM (SELECT CASE WHEN d.first_responded_at IS NULL THEN d.first_response_due_at ELSE d.next_response_due_at END AS due,
                         CASE WHEN d.first_responded_at IS NULL THEN d.first_response_warn_at ELSE d.next_response_warn_at END AS warn
                  FROM tickets d
                  WHERE d.id = \(duplicateID) AND d.awaiting_reply_since IS NOT NULL AND d.sla_paused_at IS NULL) r
            WHERE t.id = \(survivorID) AND r.due IS NOT NULL
            RETURNING \(unescaped: Ticket.columns(of: "t"))
            """, logger: logger)
        for try await row in carriedWait { continued = try Ticket(row: row) }
        return continued
    }

    /// The duplicate, closed and merged into the survivor; its own earlier duplicates follow it.
    func closeMerged(_ duplicateID: UUID, into survivorID: UUID, carriesResolution carried: Bool, on connection: PostgresConnection) async throws -> Ticket {
        let closed = try await Self.single(connection.run("""
            UPDATE tickets
            SET status = 'closed', closed_at = coalesce(closed_at, now()), solved_at = NULL, merged_into = \(survivorID), merged_at = clock_timestamp(),
                awaiting_reply_since = NULL, claim_agent_id = NULL, claim_expires_at = NULL,
                resolution_due_at = CASE WHEN \(carried) THEN NULL ELSE resolution_due_at END,
                resolution_warn_at = CASE WHEN \(carried) THEN NULL ELSE resolution_warn_at END,
                version = version + 1, updated_at = now()
            WHERE id = \(duplicateID)
            RETURNING \(unescaped: Ticket.columns)
            """, logger: logger))
        // `merged_at` is when the merge wrote, after its locks (not its transaction's start, `now()`):
        // a customer message committed on the survivor while the merge waited for its lock came
        // "after" the merge, and an agent who had read it answered without the duplicate's mail
        // (`SendChecks` counts the duplicate's messages as arriving at `merged_at`).
        // Earlier duplicates of the duplicate now point at the survivor: one step to follow, always.
        // Their messages join the survivor's timeline now, at the same instant as the duplicate's
        // (its `merged_at`, just written), and `merged_at` says when they joined
        // the ticket `merged_into` names (the traffic cop counts them as arriving then).
        try await connection.perform("""
            UPDATE tickets SET merged_into = \(survivorID), merged_at = (SELECT merged_at FROM tickets WHERE id = \(duplicateID))
            WHERE merged_into = \(duplicateID)
            """, logger: logger)
        return closed
    }
}
