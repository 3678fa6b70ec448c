import Foundation
import Logging
import PostgresNIO

/// Replies as lists: a ticket's (how whoever takes it over finds a colleague's draft), and across
/// tickets by state and author (the approval queue). Oldest first (the approval queue by when each
/// was submitted), paged by the last reply's position.
struct ReplyList: Sendable {
    let logger: Logger

    struct Filter: Sendable {
        var ticketID: UUID?
        var states: [Reply.State] = []
        var authorAgentID: UUID?
        /// Only those whose delivery waits for a person (`held`): the reply itself reads `queued`.
        var deliveryHeld = false
    }

    /// Where a page starts: after the reply `id` whose time in the list's order was `microseconds`
    /// after the Unix epoch. The position itself, not the reply: a reply approved, returned, edited
    /// or discarded after its page was read (the approval queue's work) moves or leaves, and the
    /// next page read from its row then skipped every reply after it, or was refused.
    struct Position: Sendable {
        var microseconds: Int64
        var id: UUID
    }

    /// Up to `limit` replies matching `filter` after `after`, each with its position.
    func replies(matching filter: Filter, after: Position?, limit: Int, on connection: PostgresConnection) async throws
        -> [(reply: Reply, position: Position)]
    {
        // The approval queue (submitted replies alone) in order of submission, which is a submitted
        // reply's last change (any change takes it back to a draft); every other list in order of writing.
        // (`?state=submitted&state=submitted` is that queue too.)
        let column = Set(filter.states) == [.submitted] ? "updated_at" : "created_at"
        let rows = try await connection.run("""
            SELECT \(unescaped: Reply.columns), (extract(epoch FROM \(unescaped: column)) * 1000000)::bigint AS position_microseconds
            FROM replies
            WHERE (\(filter.ticketID)::uuid IS NULL OR ticket_id = \(filter.ticketID))
              AND (cardinality(\(filter.states.map(\.rawValue))::text[]) = 0 OR state = ANY(\(filter.states.map(\.rawValue))::text[]))
              AND (\(filter.authorAgentID)::uuid IS NULL OR author_agent_id = \(filter.authorAgentID))
              AND (NOT \(filter.deliveryHeld) OR id IN (SELECT reply_id FROM outbox WHERE state = 'held'))
              AND (\(after?.microseconds)::bigint IS NULL
                   OR (\(unescaped: column), id) > (to_timestamp(0) + make_interval(secs => \(after?.microseconds)::bigint / 1000000.0), \(after?.id)::uuid))
            ORDER BY \(unescaped: column), id
            LIMIT \(limit)
            """, logger: logger)
        var replies: [(Reply, Position)] = []
        for try await row in rows {
            let reply = try Reply(row: row)
            replies.append((reply, Position(microseconds: try row.makeRandomAccess().value("position_microseconds"), id: reply.id)))
        }
        return replies
    }
}
