import Foundation
import Logging
import PostgresNIO

/// What a customer's message does to tickets (for `ConversationIntake`, every channel's one way in):
/// open one, or lock the one it continues and move its clocks. Each one prepared statement, one
/// round trip, on every message ingested.
extension TicketStore {
    /// Opens a ticket for a conversation's first message (the customer waits from now) and reads,
    /// in the same statement, what the active rules need: the ticket's facts and every rule.
    func open(
        customerID: UUID, channel: Channel, subject: String, threadSubject: String, relatedTo related: UUID?, tags: [String],
        on connection: PostgresConnection
    ) async throws -> (id: UUID, number: Int64, facts: RuleStore.OpenedTicket, rules: [Rule]) {
        let rows = try await connection.rows("""
            WITH opened AS (
                INSERT INTO tickets (customer_id, subject, channel, thread_subject, related_ticket_id, tags,
                                     last_customer_message_at, awaiting_reply_since)
                VALUES (\(customerID), \(Text.prefix(subject, 2000)), \(channel.rawValue), \(threadSubject), \(related), \(tags), now(), now())
                RETURNING id, number, category, priority, customer_id
            )
            \(unescaped: RuleStore.openedTicketWithActiveRules)
            """, preparedAs: OpenTicket.self, logger: logger)
        var opened: (id: UUID, number: Int64, facts: RuleStore.OpenedTicket)?
        var rules: [Rule] = []
        for row in rows {
            let (id, number, facts, rule) = try RuleStore.openedTicket(row)
            opened = opened ?? (id, number, facts)
            if let rule { rules.append(rule) }
        }
        guard let (id, number, facts) = opened else { throw RowNotFound("INSERT INTO tickets … RETURNING") }
        return (id, number, facts, rules)
    }

    /// Every message that starts a conversation opens a ticket through `open`.
    private enum OpenTicket: PreparedSite { static let name = "madoguchi_open_ticket" }

    /// The ticket `id` (or the one it was merged into), row-locked for the rest of the transaction;
    /// nil when there is none. When the customer writes (`customerWrites`), the same statement moves
    /// its clocks and reopens it if it was waiting or solved (see migration 0024 for what starts and
    /// ends the wait); a closed or merged ticket is left as it is. `before` and `now` are its status
    /// before and after; `mergedInto` set means it was merged while this waited for the lock, and
    /// nothing was written.
    func lockForMessage(
        _ id: UUID, customerWrites: Bool, on connection: PostgresConnection
    ) async throws -> (id: UUID, number: Int64, customerID: UUID, before: Ticket.Status, now: Ticket.Status, mergedInto: UUID?)? {
        let rows = try await connection.rows("""
            WITH locked AS (
                -- A ticket merged as a duplicate hands what comes for it to the one it went into.
                SELECT id, number, customer_id, status, merged_into FROM tickets
                WHERE id = (SELECT coalesce(merged_into, id) FROM tickets WHERE id = \(id))
                FOR UPDATE
            ), moved AS (
                UPDATE tickets t
                SET status = CASE WHEN l.status IN ('pending', 'solved') THEN 'open' ELSE l.status END,
                    last_customer_message_at = now(), awaiting_reply_since = coalesce(t.awaiting_reply_since, now()),
                    solved_at = CASE WHEN l.status IN ('pending', 'solved') THEN NULL ELSE t.solved_at END,
                    version = t.version + 1, updated_at = now()
                FROM locked l
                WHERE t.id = l.id AND \(customerWrites) AND l.status <> 'closed' AND l.merged_into IS NULL
                RETURNING t.status
            )
            SELECT l.id, l.number, l.customer_id, l.status, (SELECT status FROM moved) AS moved_to, l.merged_into FROM locked l
            """, preparedAs: LockTicket.self, logger: logger)
        guard let row = rows.first else { return nil }
        let (id, number, customerID, status, movedTo, mergedInto) = try row.decode((UUID, Int64, UUID, String, String?, UUID?).self)
        let before = try Ticket.enumeration(status) as Ticket.Status
        let now = try movedTo.map { try Ticket.enumeration($0) as Ticket.Status } ?? before
        return (id, number, customerID, before, now, mergedInto)
    }

    /// Every message that continues a conversation locks its ticket (and moves its clocks) through `lockForMessage`.
    private enum LockTicket: PreparedSite { static let name = "madoguchi_lock_ticket_for_message" }
}
