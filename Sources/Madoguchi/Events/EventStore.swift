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
        let json = try JSONSerialization.text(Self.withoutNulls(data))
        if let batch = EventBatch.of(connection) {
            batch.append(.init(type: type.rawValue, ticketID: ticketID, customerID: customerID, messageID: messageID,
                               actorKeyID: actor?.keyID, actorAgentID: actor?.agentID, data: json))
            EventWrites.noteWritten()
            return
        }
        try await connection.perform("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            VALUES (\(type.rawValue), \(ticketID), \(customerID), \(messageID), \(actor?.keyID), \(actor?.agentID), \(json)::jsonb)
            """, logger: logger)
        EventWrites.noteWritten()
    }

    /// `data` with every null member left out: the contract allows null nowhere, and says of a value
    /// a change had none of before or after (`changes.awaiting_reply_since.to` when a wait ends) that
    /// the member is absent. Writers may still say "none" with `NSNull()` or a nil, as is natural.
    static func withoutNulls(_ data: [String: Any]) -> [String: Any] {
        func strip(_ value: Any) -> Any? {
            switch value {
            case is NSNull: return nil
            case let optional as Optional<Any> where optional == nil: return nil
            case let object as [String: Any]: return object.compactMapValues(strip)
            case let array as [Any]: return array.map { strip($0) ?? NSNull() }
            default: return value
            }
        }
        return data.compactMapValues(strip)
    }

    /// Writes the events the transaction on `connection` has held back, in the order recorded, in
    /// one statement (a no-op without any). Also called before an event written at once, so that
    /// the order of a transaction's events is always the order they were recorded in.
    func writeHeldBack(on connection: PostgresConnection) async throws {
        guard let rows = EventBatch.of(connection)?.take(), !rows.isEmpty else { return }
        var query = PostgresQuery(unsafeSQL: "")
        Self.appendInsert(of: rows, to: &query)
        try await connection.perform(query, logger: logger)
    }

    /// Runs `write` (one statement of the caller's that returns nothing it needs, typically a
    /// transaction's last) and writes the events held back so far in the same statement: `write` in
    /// a CTE, the events' insert after it. The transaction's closing events then cost no round trip
    /// of their own. `write` must not have a data-modifying WITH of its own (PostgreSQL allows those
    /// only at the top level).
    ///
    /// `preparedAs`: the sites (`PreparedSite`) of the write alone and of the write with events, for a
    /// write every request makes; their texts do not depend on the number of events.
    func writeHeldBack<Alone: PreparedSite, WithEvents: PreparedSite>(
        with write: PostgresQuery, preparedAs sites: (alone: Alone.Type, withEvents: WithEvents.Type), on connection: PostgresConnection
    ) async throws {
        guard let rows = EventBatch.of(connection)?.take(), !rows.isEmpty else {
            _ = try await connection.rows(write, preparedAs: sites.alone, logger: logger)
            return
        }
        var query = write
        query.sql = "WITH closing_write AS (\n" + write.sql + "\n)\n"
        Self.appendInsert(of: rows, to: &query)
        _ = try await connection.rows(query, preparedAs: sites.withEvents, logger: logger)
    }

    /// Appends the insert of `rows` to `query`, its parameters numbered after those `query` has.
    private static func appendInsert(of rows: [EventBatch.Row], to query: inout PostgresQuery) {
        // Arrays of optional uuids travel as text; '' is none.
        func ids(_ path: KeyPath<EventBatch.Row, UUID?>) -> [String] { rows.map { $0[keyPath: path]?.lowercased ?? "" } }
        let columns = [rows.map(\.type), ids(\.ticketID), ids(\.customerID), ids(\.messageID), ids(\.actorKeyID), ids(\.actorAgentID), rows.map(\.data)]
        let first = query.binds.count + 1
        for column in columns { query.binds.append(column) }
        let p = (first..<(first + columns.count)).map { "$\($0)::text[]" }
        query.sql += """
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            SELECT e.type, nullif(e.ticket_id, '')::uuid, nullif(e.customer_id, '')::uuid, nullif(e.message_id, '')::uuid,
                   nullif(e.actor_key_id, '')::uuid, nullif(e.actor_agent_id, '')::uuid, e.data::jsonb
            FROM unnest(\(p.joined(separator: ", ")))
                 WITH ORDINALITY AS e(type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data, n)
            ORDER BY e.n
            """
    }

    /// An event about a reply, on its ticket, customer and message (one statement: no read first).
    func record(_ type: EventType, reply replyID: UUID, actor: Principal?, data: [String: Any], on connection: PostgresConnection) async throws {
        var data = data
        data["reply_id"] = replyID.lowercased
        let json = try JSONSerialization.text(data)
        try await writeHeldBack(on: connection)
        try await connection.perform("""
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
        _ = try await connection.rows("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            SELECT \(type.rawValue), r.ticket_id, t.customer_id, r.message_id, \(actor?.keyID)::uuid, \(actor?.agentID)::uuid, e.data::jsonb
            FROM unnest(\(replies.map(\.replyID))::uuid[], \(data)::text[]) WITH ORDINALITY AS e(reply_id, data, n)
            JOIN replies r ON r.id = e.reply_id JOIN tickets t ON t.id = r.ticket_id
            ORDER BY e.n
            """, preparedAs: ReplyEvents.self, logger: logger)
        EventWrites.noteWritten()
    }
}

/// One statement for the events of a batch of replies (the outbox worker's, once per batch).
private enum ReplyEvents: PreparedSite { static let name = "madoguchi_reply_events" }
