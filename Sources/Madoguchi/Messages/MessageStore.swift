import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The one writer of `messages` and `attachments`: inbound messages of every channel, replies going
/// out, internal notes, and the marks providers and merges put on them later. Every method runs in
/// the caller's transaction.
struct MessageStore: Sendable {
    let logger: Logger

    /// Writes the message and its attachments; returns its id.
    func insert(_ message: NewMessage, on connection: PostgresConnection) async throws -> UUID {
        let rows = try await connection.rows(try Self.insertQuery(message, returning: "id"), preparedAs: InsertMessage.self, logger: logger)
        guard let row = rows.first else { throw RowNotFound("INSERT INTO messages … RETURNING id") }
        return try row.decode(UUID.self)
    }

    /// Every inbound message of every channel goes through `insert`.
    private enum InsertMessage: PreparedSite { static let name = "madoguchi_insert_message" }

    /// Writes the message and its attachments; returns it as read back.
    func insertReturningMessage(_ message: NewMessage, on connection: PostgresConnection) async throws -> Message {
        let rows = try await connection.run(try Self.insertQuery(message, returning: Message.columns), logger: logger)
        for try await row in rows { return try Message(row: row) }
        throw RowNotFound("INSERT INTO messages … RETURNING")
    }

    /// One statement for the message and all its attachments, whatever their number: a mail with
    /// ten files costs one round trip, not eleven. Size and sha256 are computed from the bytes by
    /// the database itself (the table's CHECK holds size to the content).
    private static func insertQuery(_ message: NewMessage, returning: String) throws -> PostgresQuery {
        let files = message.attachments
        let contained = try files.map { String(decoding: try JSONEncoder().encode($0.contained), as: UTF8.self) }
        return """
            WITH written AS (
                INSERT INTO messages (
                    ticket_id, direction, channel, classification, customer_id, author_agent_id, inbound_payload_id, provider, provider_message_id,
                    from_address, to_addresses, subject, body_text, body_html, quoted_text, visible_text,
                    email_message_id, in_reply_to, email_references, threading_reason, metadata, sent_at)
                VALUES (
                    \(message.ticketID), \(message.direction.rawValue), \(message.channel.rawValue), \(message.classification.rawValue),
                    \(message.customerID), \(message.authorAgentID), \(message.inboundPayloadID), \(message.provider), \(message.providerMessageID),
                    \(message.from), \(message.to), \(message.subject), \(message.bodyText), \(message.bodyHTML), \(message.quotedText),
                    \(message.visibleText), \(message.emailMessageID), \(message.inReplyTo), \(message.references), \(message.threadingReason),
                    \(message.metadata)::text::jsonb, \(message.storedSentAt))
                RETURNING *
            ), files AS (
                INSERT INTO attachments (message_id, position, filename, media_type, size, sha256, content_id, inline, content, contained)
                SELECT written.id, f.n - 1, f.filename, f.media_type, octet_length(f.content), sha256(f.content),
                       CASE WHEN f.has_content_id THEN f.content_id END, f.inline, f.content, f.contained::jsonb
                FROM written, unnest(
                    \(files.map(\.filename))::text[], \(files.map(\.mediaType))::text[], \(files.map { $0.contentID != nil })::boolean[],
                    \(files.map { $0.contentID ?? "" })::text[], \(files.map(\.isInline))::boolean[],
                    \(files.map { ByteBuffer(bytes: $0.content) })::bytea[], \(contained)::text[]
                ) WITH ORDINALITY AS f(filename, media_type, has_content_id, content_id, inline, content, contained, n)
            )
            SELECT \(unescaped: returning) FROM written AS message
            """
    }

    /// An internal note (申し送り) by `agentID`: on the timeline, never sent. `metadata` says what kind.
    func insertNote(
        ticketID: UUID, channel: Channel, agentID: UUID, body: String, metadata: [String: Any], on connection: PostgresConnection
    ) async throws -> Message {
        try await insertReturningMessage(
            NewMessage(ticketID: ticketID, direction: .internal, channel: channel, authorAgentID: agentID, bodyText: body,
                       metadata: try JSONSerialization.text(metadata)),
            on: connection)
    }

    /// A note the service writes for an agent, with no request behind it (an agent's words above a
    /// mail they forwarded; the desk's own account of a failed reply), announced as `note.added`
    /// with no actor and no mentions. `source` says which.
    @discardableResult
    func insertServiceNote(
        ticketID: UUID, customerID: UUID, channel: Channel, agentID: UUID, body: String, source: String, on connection: PostgresConnection
    ) async throws -> UUID {
        let note = try await insertNote(ticketID: ticketID, channel: channel, agentID: agentID, body: body,
                                        metadata: ["mentions": [String](), "source": source], on: connection)
        try await EventStore(logger: logger).record(
            .noteAdded, ticketID: ticketID, customerID: customerID, messageID: note.id, actor: nil, data: ["mentions": [String]()], on: connection)
        return note.id
    }

    /// One message as the timeline shows it, without its files (a note has none); nil for none.
    func message(id: UUID, on connection: PostgresConnection) async throws -> Message? {
        let rows = try await connection.run("SELECT \(unescaped: Message.columns) FROM messages AS message WHERE id = \(id)", logger: logger)
        for try await row in rows { return try Message(row: row) }
        return nil
    }

    // MARK: - Marks added later

    /// The customer withdrew an inbound message (LINE unsend): it stays, marked. The message, if any.
    func markWithdrawn(channel: Channel, provider: String, providerMessageID: String, on connection: PostgresConnection) async throws
        -> (id: UUID, ticketID: UUID, customerID: UUID?)?
    {
        let rows = try await connection.run("""
            UPDATE messages SET metadata = metadata || jsonb_build_object('unsent_at', now())
            WHERE channel = \(channel.rawValue) AND direction = 'inbound' AND provider = \(provider) AND provider_message_id = \(providerMessageID)
            RETURNING id, ticket_id, customer_id
            """, logger: logger)
        for try await row in rows.decode((UUID, UUID, UUID?).self) { return row }
        return nil
    }

    /// Our outbound message with this provider id, row-locked, and its delivery status so far.
    func lockOutbound(provider: String, providerMessageID: String, on connection: PostgresConnection) async throws
        -> (id: UUID, ticketID: UUID, deliveryStatus: String?)?
    {
        let rows = try await connection.run("""
            SELECT id, ticket_id, metadata->'delivery'->>'status' FROM messages
            WHERE direction = 'outbound' AND provider = \(provider) AND provider_message_id = \(providerMessageID)
            FOR UPDATE
            """, logger: logger)
        for try await row in rows.decode((UUID, UUID, String?).self) { return row }
        return nil
    }

    /// Replaces the message's delivery report (`metadata.delivery`) with `delivery`, a JSON object.
    func setDelivery(_ delivery: String, of messageID: UUID, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE messages SET metadata = jsonb_set(metadata, '{delivery}', \(delivery)::jsonb) WHERE id = \(messageID)
            """, logger: logger)
    }

    /// Our message left (or did not): the provider's id for it (which its delivery reports name) and
    /// the delivery report, a JSON object (`status`, `updated_at`, …).
    func recordSend(of messageID: UUID, provider: String?, providerMessageID: String?, delivery: String, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE messages
            SET provider = coalesce(\(provider), provider), provider_message_id = coalesce(\(providerMessageID), provider_message_id),
                metadata = jsonb_set(metadata, '{delivery}', \(delivery)::jsonb)
            WHERE id = \(messageID)
            """, logger: logger)
    }

    /// Moves every message of customer `other` to `target` (a merge); returns how many.
    func moveCustomer(from other: UUID, to target: UUID, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("UPDATE messages SET customer_id = \(target) WHERE customer_id = \(other) RETURNING id", logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }
}
