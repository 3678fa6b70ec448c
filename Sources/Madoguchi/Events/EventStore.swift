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
        if let batch = EventBatch.of(connection) {
            batch.append(.init(type: type.rawValue, ticketID: ticketID, customerID: customerID, messageID: messageID,
                               actorKeyID: actor?.keyID, actorAgentID: actor?.agentID, data: json))
            EventWrites.noteWritten()
            return
        }
        try await connection.query("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            VALUES (\(type.rawValue), \(ticketID), \(customerID), \(messageID), \(actor?.keyID), \(actor?.agentID), \(json)::jsonb)
            """, logger: logger)
        EventWrites.noteWritten()
    }

    /// Writes the events the transaction on `connection` has held back, in the order recorded, in
    /// one statement (a no-op without any). Also called before an event written at once, so that
    /// the order of a transaction's events is always the order they were recorded in.
    func writeHeldBack(on connection: PostgresConnection) async throws {
        guard let rows = EventBatch.of(connection)?.take(), !rows.isEmpty else { return }
        // Arrays of optional uuids travel as text; '' is none.
        func ids(_ path: KeyPath<EventBatch.Row, UUID?>) -> [String] { rows.map { $0[keyPath: path]?.lowercased ?? "" } }
        try await connection.query("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            SELECT e.type, nullif(e.ticket_id, '')::uuid, nullif(e.customer_id, '')::uuid, nullif(e.message_id, '')::uuid,
                   nullif(e.actor_key_id, '')::uuid, nullif(e.actor_agent_id, '')::uuid, e.data::jsonb
            FROM unnest(\(rows.map(\.type))::text[], \(ids(\.ticketID))::text[], \(ids(\.customerID))::text[], \(ids(\.messageID))::text[],
                        \(ids(\.actorKeyID))::text[], \(ids(\.actorAgentID))::text[], \(rows.map(\.data))::text[])
                 WITH ORDINALITY AS e(type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data, n)
            ORDER BY e.n
            """, logger: logger)
    }

    /// An event about a reply, on its ticket, customer and message (one statement: no read first).
    func record(_ type: EventType, reply replyID: UUID, actor: Principal?, data: [String: Any], on connection: PostgresConnection) async throws {
        var data = data
        data["reply_id"] = replyID.lowercased
        let json = try JSONSerialization.text(data)
        try await writeHeldBack(on: connection)
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
        try await writeHeldBack(on: connection)
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
