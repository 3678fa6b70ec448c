import Foundation
import Logging
import PostgresNIO

/// A customer's history across channels: each ticket opened and each message on them (internal notes
/// left out: they are the team's, not the customer's), newest first.
struct CustomerTimeline: Sendable {
    let logger: Logger

    struct Entry: Sendable {
        var kind: String
        var at: Date
        /// With `id`, the position a cursor resumes after (microseconds, exact in PostgreSQL).
        var atMicroseconds: Int64
        var id: UUID
        var ticketID: UUID
        var ticketNumber: Int64
        var ticketStatus: String
        var channel: String
        var messageID: UUID?
        var direction: String?
        var classification: String?
        var subject: String?
        var excerpt: String?
    }

    /// Newest first; a ticket's first message shares its transaction's time, and sorts as the later
    /// of the two (`rank`).
    func page(customerID: UUID, before: (Int64, UUID)?, limit: Int, on connection: PostgresConnection) async throws -> [Entry] {
        let rows = try await connection.run("""
            SELECT kind, at, (extract(epoch FROM at) * 1000000)::bigint, entry_id, ticket_id, number, status, channel,
                   message_id, direction, classification, subject, excerpt
            FROM (
                SELECT 'ticket' AS kind, 0 AS rank, t.created_at AS at, t.id AS entry_id, t.id AS ticket_id, t.number, t.status, t.channel,
                       NULL::uuid AS message_id, NULL::text AS direction, NULL::text AS classification, t.subject, NULL::text AS excerpt
                FROM tickets t WHERE t.customer_id = \(customerID)
              UNION ALL
                -- Messages on the customer's tickets, and theirs on other tickets, as two arms: one
                -- condition with OR over the two tables could use neither's index and scanned both
                -- (124 ms a page at 530,000 messages, growing with the table).
                SELECT 'message', 1, m.created_at, m.id, t.id, t.number, t.status, m.channel,
                       m.id, m.direction, m.classification, m.subject, left(coalesce(m.visible_text, m.body_text), 200)
                FROM tickets t JOIN messages m ON m.ticket_id = t.id
                WHERE t.customer_id = \(customerID) AND m.direction <> 'internal'
              UNION ALL
                SELECT 'message', 1, m.created_at, m.id, t.id, t.number, t.status, m.channel,
                       m.id, m.direction, m.classification, m.subject, left(coalesce(m.visible_text, m.body_text), 200)
                FROM messages m JOIN tickets t ON t.id = m.ticket_id
                WHERE m.customer_id = \(customerID) AND t.customer_id IS DISTINCT FROM \(customerID) AND m.direction <> 'internal'
            ) AS entries
            WHERE \(before?.0)::bigint IS NULL
               OR ((extract(epoch FROM at) * 1000000)::bigint, rank, entry_id)
                  < (\(before?.0)::bigint, (SELECT CASE WHEN EXISTS (SELECT 1 FROM messages WHERE id = \(before?.1)::uuid) THEN 1 ELSE 0 END), \(before?.1)::uuid)
            ORDER BY 3 DESC, rank DESC, entry_id DESC
            LIMIT \(limit)
            """, logger: logger)
        var entries: [Entry] = []
        for try await (kind, at, micros, id, ticketID, number, status, channel, messageID, direction, classification, subject, excerpt)
            in rows.decode((String, Date, Int64, UUID, UUID, Int64, String, String, UUID?, String?, String?, String?, String?).self)
        {
            entries.append(Entry(kind: kind, at: at, atMicroseconds: micros, id: id, ticketID: ticketID, ticketNumber: number, ticketStatus: status,
                                 channel: channel, messageID: messageID, direction: direction, classification: classification,
                                 subject: subject, excerpt: excerpt))
        }
        return entries
    }
}
