import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Filters for listing tickets; every one optional.
struct TicketFilter: Sendable {
    var statuses: [Ticket.Status] = []
    var assigneeID: UUID?
    var unassignedOnly = false
    var customerID: UUID?
}

/// The SQL behind reading tickets and their timelines.
struct TicketStore: Sendable {
    let logger: Logger

    func ticket(id: UUID, on connection: PostgresConnection) async throws -> Ticket? {
        let rows = try await connection.query("SELECT \(unescaped: Ticket.columns) FROM tickets WHERE id = \(id)", logger: logger)
        for try await row in rows { return try Ticket(row: row) }
        return nil
    }

    /// Newest first (by ticket number), `limit` rows after the ticket numbered `before`.
    /// Each filter is a bind parameter that is either NULL (no filter) or applied: one statement for
    /// every combination, so the plan cache stays warm.
    func tickets(matching filter: TicketFilter, before: Int64?, limit: Int, on connection: PostgresConnection) async throws -> [Ticket] {
        let statuses: [String]? = filter.statuses.isEmpty ? nil : filter.statuses.map(\.rawValue)
        let rows = try await connection.query("""
            SELECT \(unescaped: Ticket.columns) FROM tickets
            WHERE (\(statuses)::text[] IS NULL OR status = ANY(\(statuses)::text[]))
              AND (\(filter.assigneeID)::uuid IS NULL OR assignee_id = \(filter.assigneeID))
              AND (NOT \(filter.unassignedOnly) OR assignee_id IS NULL)
              AND (\(filter.customerID)::uuid IS NULL OR customer_id = \(filter.customerID))
              AND (\(before)::bigint IS NULL OR number < \(before))
            ORDER BY number DESC
            LIMIT \(limit)
            """, logger: logger)
        var tickets: [Ticket] = []
        for try await row in rows { tickets.append(try Ticket(row: row)) }
        return tickets
    }

    /// The ticket's timeline in order of arrival, `limit` messages after the message `after`.
    /// The position is read back from the row itself, so no timestamp is ever rounded through a cursor.
    func messages(ticketID: UUID, after: UUID?, limit: Int, on connection: PostgresConnection) async throws -> [Message] {
        let rows = try await connection.query("""
            SELECT \(unescaped: Message.columns) FROM messages
            WHERE ticket_id = \(ticketID)
              AND (\(after)::uuid IS NULL
                   OR (created_at, id) > (SELECT created_at, id FROM messages WHERE id = \(after) AND ticket_id = \(ticketID)))
            ORDER BY created_at, id
            LIMIT \(limit)
            """, logger: logger)
        var messages: [Message] = []
        for try await row in rows { messages.append(try Message(row: row)) }
        guard !messages.isEmpty else { return messages }

        let attachmentRows = try await connection.query("""
            SELECT message_id, id, filename, media_type, size, sha256, content_id, inline
            FROM attachments WHERE message_id = ANY(\(messages.map(\.id)))
            ORDER BY created_at, position, id
            """, logger: logger)
        var attachments: [UUID: [Message.Attachment]] = [:]
        for try await (messageID, id, filename, mediaType, size, sha256, contentID, inline)
            in attachmentRows.decode((UUID, UUID, String, String, Int64, ByteBuffer, String?, Bool).self)
        {
            attachments[messageID, default: []].append(.init(
                id: id, filename: filename, mediaType: mediaType, size: size, sha256: Array(buffer: sha256), contentID: contentID, inline: inline))
        }
        for index in messages.indices { messages[index].attachments = attachments[messages[index].id] ?? [] }
        return messages
    }
}
