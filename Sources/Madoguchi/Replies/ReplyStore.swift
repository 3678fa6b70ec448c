import Foundation
import Logging
import PostgresNIO

/// The one writer of `replies`. Every method runs in the caller's transaction, which holds the
/// ticket's row lock (taken first, as every writer does, so none deadlock).
struct ReplyStore: Sendable {
    let logger: Logger

    func insert(ticketID: UUID, authorAgentID: UUID, channel: Channel, recipients: [String], subject: String, body: String,
                on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            INSERT INTO replies (ticket_id, author_agent_id, channel, recipients, subject, body_text)
            VALUES (\(ticketID), \(authorAgentID), \(channel.rawValue), \(recipients), \(subject), \(body))
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// An automatic reply (no agent wrote it): queued at once, without a draft.
    func insertAutomatic(ticketID: UUID, authorAgentID: UUID, recipients: [String], subject: String, body: String,
                         on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            INSERT INTO replies (ticket_id, author_agent_id, channel, recipients, subject, body_text, automatic)
            VALUES (\(ticketID), \(authorAgentID), 'email', \(recipients), \(subject), \(body), true)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// The reply, row-locked when `lock`; a 404 when there is none.
    func reply(id: UUID, lock: Bool = false, on connection: PostgresConnection) async throws -> Reply {
        let rows = try await connection.run(
            "SELECT \(unescaped: Reply.columns) FROM replies WHERE id = \(id) \(unescaped: lock ? "FOR UPDATE" : "")", logger: logger)
        for try await row in rows { return try Reply(row: row) }
        throw Problem.notFound("There is no reply \(id.lowercased).")
    }

    /// The reply, row-locked if it is still at the desk (a draft, or submitted): only then can the
    /// caller change it. One that has left is read as it stands, unlocked. The delivery recorder
    /// updates a reply that has left and then, for its events, takes a key-share lock on the ticket,
    /// which the desk holds: waiting here for that reply's lock would be a deadlock.
    func replyAtDesk(id: UUID, on connection: PostgresConnection) async throws -> Reply {
        let rows = try await connection.run(
            "SELECT \(unescaped: Reply.columns) FROM replies WHERE id = \(id) AND state IN ('draft', 'submitted') FOR UPDATE", logger: logger)
        for try await row in rows { return try Reply(row: row) }
        return try await reply(id: id, on: connection)
    }

    /// New text, subject or recipients by `editor`; the reply is a draft again (what a supervisor
    /// approves is what they saw).
    func edit(_ reply: Reply, body: String?, subject: String?, recipients: [String]?, by editor: UUID,
              on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            UPDATE replies
            SET state = 'draft', body_text = \(body ?? reply.body), subject = \(subject ?? reply.subject),
                recipients = \(recipients ?? reply.recipients), \(unescaped: Self.editedBy(editor.lowercased)),
                version = version + 1, updated_at = now()
            WHERE id = \(reply.id)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// `editor` changed the reply's files: a draft again, as for `edit`.
    func filesChanged(_ replyID: UUID, by editor: UUID, on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            UPDATE replies SET state = 'draft', \(unescaped: Self.editedBy(editor.lowercased)), version = version + 1, updated_at = now()
            WHERE id = \(replyID)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// The `editors` assignment for an edit by `agent` (a UUID's text, so safe to write inline): the
    /// author is no editor of their own reply, and each editor is listed once.
    private static func editedBy(_ agent: String) -> String {
        "editors = CASE WHEN author_agent_id = '\(agent)' OR '\(agent)' = ANY(editors) THEN editors ELSE editors || '\(agent)'::uuid END"
    }

    /// `agent` asks for approval of the reply as it stands.
    func submit(_ replyID: UUID, by agent: UUID, on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            UPDATE replies SET state = 'submitted', submitted_by = \(agent), version = version + 1, updated_at = now()
            WHERE id = \(replyID)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// A bounce is the last word on a delivery: a `sent` recorded after it (a held reply marked sent
    /// by a supervisor, or a worker's 250 written after a fast bounce) leaves the reply `bounced`.
    func setState(_ state: Reply.State, of replyID: UUID, on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            UPDATE replies SET state = CASE WHEN state = 'bounced' AND \(state.rawValue) = 'sent' THEN state ELSE \(state.rawValue) END,
                               version = version + 1, updated_at = now()
            WHERE id = \(replyID)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// The reply left the desk: it is the outbound message `messageID`, waiting in the outbox.
    func markQueued(_ replyID: UUID, messageID: UUID, confirmedUndeliverable: Bool = false, on connection: PostgresConnection) async throws -> Reply {
        try await single(connection.run("""
            UPDATE replies SET state = 'queued', message_id = \(messageID), sent_at = now(), version = version + 1, updated_at = now(),
                               confirmed_undeliverable = \(confirmedUndeliverable)
            WHERE id = \(replyID)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger))
    }

    /// Several replies' delivery states at once (the outbox worker settles them by the batch); a
    /// bounce stays, as above.
    func setState(_ state: Reply.State, of replyIDs: [UUID], on connection: PostgresConnection) async throws {
        _ = try await connection.rows("""
            UPDATE replies SET state = CASE WHEN state = 'bounced' AND \(state.rawValue)::text = 'sent' THEN state ELSE \(state.rawValue) END,
                               version = version + 1, updated_at = now()
            WHERE id = ANY(\(replyIDs)::uuid[])
            """, preparedAs: BatchState.self, logger: logger)
    }

    /// The outbox worker's, once per batch of deliveries.
    private enum BatchState: PreparedSite { static let name = "madoguchi_replies_batch_state" }

    private func single(_ rows: PostgresRowSequence) async throws -> Reply {
        for try await row in rows { return try Reply(row: row) }
        throw RowNotFound("a replies INSERT/UPDATE … RETURNING")
    }
}
