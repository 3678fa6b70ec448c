import Foundation
import Logging
import PostgresNIO

/// The queue's pull: the most urgent workable ticket for an agent, claimed, with its
/// `ticket.claimed` event, in one statement (`TicketWork.claimNext` says what it picks). The event's
/// INSERT is written here rather than through `EventStore`, the one exception: it keeps the hottest
/// request an agent makes to one round trip with no transaction around it.
extension TicketStore {
    /// The ticket claimed, or nil when the agent's queues hold nothing workable.
    func claimNext(for agentID: UUID, leaseSeconds: Double, keyID: UUID?, on connection: PostgresConnection) async throws -> Ticket? {
        var claimed: Ticket?
        for try await ticket in try await connection.run(
            ClaimNextStatement(agentID: agentID, leaseSeconds: leaseSeconds, keyID: keyID), logger: logger) {
            claimed = ticket
        }
        if claimed != nil { EventWrites.noteWritten() }
        return claimed
    }

    /// `$1` the agent, `$2` the lease in seconds, `$3` the API key acting. Kept as one text so that the
    /// benchmark hands pgbench exactly what the service runs (so no SQL comments: pgbench takes it as
    /// one line, and a colon before a word is a pgbench variable). The event's `expires_at` has the form
    /// of every time in events: RFC 3339, UTC, whole seconds (a UTC timestamp's JSON form, plus `Z`).
    /// The agent's queues are read once per pull (`me`, evaluated once as an InitPlan), not once for
    /// every ticket the scan looks at: correlated, that lookup halved the claims per second at 32 agents.
    /// A lapsed claim on a ticket assigned to the caller is theirs again whatever its queue, and comes
    /// before an equally urgent lapsed one of someone else's (as `mine` does among unclaimed ones).
    /// A ticket whose rule set a required skill (a question in English, a return) goes only to an
    /// agent with that skill, as auto-assignment gives it; one assigned to the caller is theirs anyway.
    /// Without the check, the skill ticket auto-assignment left waiting because nobody on duty had
    /// the skill was exactly what the next agent without it pulled.
    /// A deactivated agent pulls nothing (`me` is empty, and every arm needs it): a pull in flight
    /// while the deactivation committed, or on a key still cached for a second, had claimed and
    /// assigned a ticket to someone gone, which no queue offered again.
    static let claimNextSQL = """
        WITH me AS (
            SELECT cardinality(a.queues) = 0 AS any_queue, a.queues, a.skills FROM agents a WHERE a.id = $1 AND a.active
        ), mine AS (
            SELECT t.id, t.priority_rank, t.response_due_at, t.created_at, true AS own FROM tickets t
            WHERE t.assignee_id = $1 AND t.status IN ('new', 'open') AND t.claim_agent_id IS NULL AND EXISTS (SELECT 1 FROM me)
            ORDER BY t.priority_rank DESC, t.response_due_at ASC NULLS LAST, t.created_at ASC
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ), unclaimed AS (
            SELECT t.id, t.priority_rank, t.response_due_at, t.created_at, false AS own FROM tickets t
            WHERE t.status IN ('new', 'open') AND t.claim_agent_id IS NULL AND t.assignee_id IS NULL
              AND ((SELECT any_queue FROM me) OR t.queue = ANY((SELECT queues FROM me)::text[]))
              AND (t.required_skill IS NULL OR t.required_skill = ANY((SELECT skills FROM me)::text[]))
            ORDER BY t.priority_rank DESC, t.response_due_at ASC NULLS LAST, t.created_at ASC
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ), lapsed AS (
            SELECT t.id, t.priority_rank, t.response_due_at, t.created_at, t.assignee_id IS NOT DISTINCT FROM $1 AS own FROM tickets t
            WHERE t.status IN ('new', 'open') AND t.claim_expires_at <= now() AND EXISTS (SELECT 1 FROM me)
              AND (t.assignee_id = $1
                   OR (((SELECT any_queue FROM me) OR t.queue = ANY((SELECT queues FROM me)::text[]))
                       AND (t.required_skill IS NULL OR t.required_skill = ANY((SELECT skills FROM me)::text[]))))
            ORDER BY t.priority_rank DESC, own DESC, t.response_due_at ASC NULLS LAST, t.created_at ASC
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ), candidate AS (
            SELECT id FROM (SELECT * FROM mine UNION ALL SELECT * FROM unclaimed UNION ALL SELECT * FROM lapsed) AS arms
            ORDER BY priority_rank DESC, own DESC, response_due_at ASC NULLS LAST, created_at ASC
            LIMIT 1
        ), claimed AS (
            UPDATE tickets t
            SET claim_agent_id = $1, claim_expires_at = now() + make_interval(secs => $2),
                assignee_id = coalesce(t.assignee_id, $1),
                version = t.version + 1, updated_at = now()
            FROM candidate
            WHERE t.id = candidate.id
            RETURNING \(Ticket.columns(of: "t"))
        ), event AS (
            INSERT INTO events (type, ticket_id, customer_id, actor_key_id, actor_agent_id, data)
            SELECT '\(EventType.ticketClaimed.rawValue)', id, customer_id, $3, $1,
                   jsonb_build_object('agent_id', $1, 'via', 'queue',
                                      'expires_at', (to_json(date_trunc('second', claim_expires_at AT TIME ZONE 'UTC')) #>> '{}') || 'Z')
            FROM claimed
        )
        SELECT * FROM claimed
        """
}

/// The claim statement, prepared once per connection under its name: it is the hottest statement an
/// agent runs, and parsing and planning it took longer than running it (1.3 + 2.2 ms against 0.5 ms).
/// `madoguchi bench claim-next` hands its `sql` to pgbench unchanged.
package struct ClaimNextStatement: PostgresPreparedStatement {
    package static let name = "madoguchi_claim_next"
    package static var sql: String { TicketStore.claimNextSQL }
    package typealias Row = Ticket

    let agentID: UUID
    let leaseSeconds: Double
    let keyID: UUID?

    package func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(agentID)
        binds.append(leaseSeconds)
        binds.append(keyID)
        return binds
    }

    package func decodeRow(_ row: PostgresRow) throws -> Ticket { try Ticket(row: row) }
}
