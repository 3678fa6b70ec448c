import Foundation
import Logging
import PostgresNIO

/// Appends to `events`. Always called inside the transaction that makes the change it records, so
/// the feed never shows a change that rolled back nor misses one that committed.
struct EventStore: Sendable {
    let logger: Logger

    func record(
        _ type: EventType,
        ticketID: UUID? = nil,
        customerID: UUID? = nil,
        messageID: UUID? = nil,
        actor: Principal?,
        data: [String: Any] = [:],
        on connection: PostgresConnection
    ) async throws {
        let json = try JSONSerialization.text(data)
        try await connection.query("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            VALUES (\(type.rawValue), \(ticketID), \(customerID), \(messageID), \(actor?.keyID), \(actor?.agentID), \(json)::jsonb)
            """, logger: logger)
        EventWrites.noteWritten()
    }

    /// An event about a reply, on its ticket, customer and message (one statement: no read first).
    func record(_ type: EventType, reply replyID: UUID, actor: Principal?, data: [String: Any], on connection: PostgresConnection) async throws {
        var data = data
        data["reply_id"] = replyID.lowercased
        let json = try JSONSerialization.text(data)
        try await connection.query("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            SELECT \(type.rawValue), r.ticket_id, t.customer_id, r.message_id, \(actor?.keyID), \(actor?.agentID), \(json)::jsonb
            FROM replies r JOIN tickets t ON t.id = r.ticket_id
            WHERE r.id = \(replyID)
            """, logger: logger)
        EventWrites.noteWritten()
    }

    /// One event of `type` for each of several replies, with each one's data, in one statement.
    func record(_ type: EventType, replies: [(replyID: UUID, data: [String: Any])], actor: Principal?, on connection: PostgresConnection) async throws {
        let data = try replies.map { reply in
            var data = reply.data
            data["reply_id"] = reply.replyID.lowercased
            return try JSONSerialization.text(data)
        }
        try await connection.query("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            SELECT \(type.rawValue), r.ticket_id, t.customer_id, r.message_id, \(actor?.keyID), \(actor?.agentID), e.data::jsonb
            FROM unnest(\(replies.map(\.replyID))::uuid[], \(data)::text[]) WITH ORDINALITY AS e(reply_id, data, n)
            JOIN replies r ON r.id = e.reply_id JOIN tickets t ON t.id = r.ticket_id
            ORDER BY e.n
            """, logger: logger)
        EventWrites.noteWritten()
    }
}
