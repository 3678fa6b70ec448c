import Foundation
import Logging
import PostgresNIO

/// Replies as lists: a ticket's (how whoever takes it over finds a colleague's draft), and across
/// tickets by state and author (the approval queue). Oldest first (the approval queue by when each
/// was submitted), paged by the last reply's id.
struct ReplyList: Sendable {
    let logger: Logger

    struct Filter: Sendable {
        var ticketID: UUID?
        var states: [Reply.State] = []
        var authorAgentID: UUID?
        /// Only those whose delivery waits for a person (`held`): the reply itself reads `queued`.
        var deliveryHeld = false
    }

    /// Up to `limit` replies matching `filter` after the reply `after`. A cursor naming a reply that
    /// is not there, or (for one ticket's list) another ticket's, is refused rather than read as
    /// the end of the list.
    func replies(matching filter: Filter, after: UUID?, limit: Int, on connection: PostgresConnection) async throws -> [Reply] {
        if let after {
            let rows = try await connection.run("SELECT ticket_id FROM replies WHERE id = \(after)", logger: logger)
            var ticketOfCursor: UUID?
            for try await ticketID in rows.decode(UUID.self) { ticketOfCursor = ticketID }
            guard let ticketOfCursor, filter.ticketID == nil || filter.ticketID == ticketOfCursor else {
                throw Problem.invalidParameter("cursor", "names no reply of this list; start from its first page")
            }
        }
        // The approval queue (submitted replies alone) in order of submission, which is a submitted
        // reply's last change (any change takes it back to a draft); every other list in order of writing.
        let column = filter.states == [.submitted] ? "updated_at" : "created_at"
        let rows = try await connection.run("""
            SELECT \(unescaped: Reply.columns) FROM replies
            WHERE (\(filter.ticketID)::uuid IS NULL OR ticket_id = \(filter.ticketID))
              AND (cardinality(\(filter.states.map(\.rawValue))::text[]) = 0 OR state = ANY(\(filter.states.map(\.rawValue))::text[]))
              AND (\(filter.authorAgentID)::uuid IS NULL OR author_agent_id = \(filter.authorAgentID))
              AND (NOT \(filter.deliveryHeld) OR id IN (SELECT reply_id FROM outbox WHERE state = 'held'))
              AND (\(after)::uuid IS NULL OR (\(unescaped: column), id) > (SELECT \(unescaped: column), id FROM replies WHERE id = \(after)))
            ORDER BY \(unescaped: column), id
            LIMIT \(limit)
            """, logger: logger)
        var replies: [Reply] = []
        for try await row in rows { replies.append(try Reply(row: row)) }
        return replies
    }
}
