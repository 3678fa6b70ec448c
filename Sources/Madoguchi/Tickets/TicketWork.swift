import Foundation
import Logging
import PostgresNIO

/// Claims, the work queue, ticket changes and internal notes: everything that writes to a ticket on an
/// agent's behalf. Each use case is one transaction that takes the ticket's row lock first and writes
/// its event before committing.
struct TicketWork: Sendable {
    let database: Database
    let logger: Logger
    let lease: Duration

    var events: EventStore { EventStore(logger: logger) }
    var tickets: TicketStore { TicketStore(logger: logger) }

    // MARK: - Claims

    /// Takes the ticket for `agent`, or renews the agent's own claim. A live claim of another agent is
    /// `claim-held`, naming the holder and expiry.
    func claim(ticketID: UUID, by principal: Principal, agentID: UUID) async throws -> Ticket {
        try await database.withTransaction { connection in
            let (ticket, claimLive) = try await lockTicket(ticketID, on: connection)
            if let claim = ticket.claim, claimLive, claim.agentID != agentID {
                throw await Self.claimHeld(claim, on: connection, logger: logger)
            }
            let rows = try await connection.run("""
                UPDATE tickets
                SET claim_agent_id = \(agentID), claim_expires_at = now() + make_interval(secs => \(lease.seconds)),
                    assignee_id = coalesce(assignee_id, \(agentID)),
                    version = version + 1, updated_at = now()
                WHERE id = \(ticketID)
                RETURNING \(unescaped: Ticket.columns)
                """, logger: logger)
            let claimed = try await Self.single(rows)
            let renewal = ticket.claim?.agentID == agentID && claimLive
            var data: [String: Any] = ["agent_id": agentID.uuidString.lowercased(), "expires_at": Self.timestamp(claimed.claim?.expiresAt)]
            if !renewal { data["via"] = "direct" }
            try await events.record(
                renewal ? .ticketClaimRenewed : .ticketClaimed, ticketID: ticketID, customerID: ticket.customerID,
                actor: principal, data: data, on: connection)
            return claimed
        }
    }

    /// Releases the caller's claim. A supervisor may break another agent's live claim (recorded as a
    /// break); an agent may not. Releasing an unclaimed ticket changes nothing.
    func release(ticketID: UUID, by principal: Principal, agentID: UUID) async throws -> Ticket {
        try await database.withTransaction { connection in
            let (ticket, claimLive) = try await lockTicket(ticketID, on: connection)
            guard let claim = ticket.claim else { return ticket }
            let breaking = claimLive && claim.agentID != agentID
            if breaking, principal.role != .supervisor {
                throw await Self.claimHeld(claim, on: connection, logger: logger)
            }
            let rows = try await connection.run("""
                UPDATE tickets SET claim_agent_id = NULL, claim_expires_at = NULL, version = version + 1, updated_at = now()
                WHERE id = \(ticketID)
                RETURNING \(unescaped: Ticket.columns)
                """, logger: logger)
            let released = try await Self.single(rows)
            try await events.record(
                breaking ? .ticketClaimBroken : .ticketClaimReleased, ticketID: ticketID, customerID: ticket.customerID,
                actor: principal, data: ["agent_id": claim.agentID.uuidString.lowercased()], on: connection)
            return released
        }
    }

    /// Claims the most urgent workable ticket in the agent's queues, or returns nil when none is left.
    /// A ticket assigned to someone (by a supervisor, auto-assignment or an earlier claim) is theirs:
    /// it is handed to its assignee, whatever its queue, before an equally urgent unassigned one, and
    /// to anyone else only once a claim on it lapsed.
    ///
    /// One statement picks, claims and records the event: rows other agents are claiming at this
    /// instant are skipped, not waited on, so any number of agents pulling at once each get a
    /// different ticket, in one round trip. It looks in three places, each with its own partial index
    /// (migrations 0023, 0030 and 0034): the agent's own most urgent unclaimed ticket, the most urgent
    /// ticket nobody holds or is assigned, and the most urgent whose claim lapsed; the best of them is
    /// taken. So a claim never steps past live claims, however many there are.
    func claimNext(by principal: Principal, agentID: UUID) async throws -> Ticket? {
        let statement = ClaimNextStatement(agentID: agentID, leaseSeconds: lease.seconds, keyID: principal.keyID)
        return try await database.withConnection { connection in
            var claimed: Ticket?
            for try await ticket in try await connection.run(statement, logger: logger) { claimed = ticket }
            if claimed != nil { EventWrites.noteWritten() }
            return claimed
        }
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
    static let claimNextSQL = """
        WITH me AS (
            SELECT cardinality(a.queues) = 0 AS any_queue, a.queues, a.skills FROM agents a WHERE a.id = $1
        ), mine AS (
            SELECT t.id, t.priority_rank, t.response_due_at, t.created_at, true AS own FROM tickets t
            WHERE t.assignee_id = $1 AND t.status IN ('new', 'open') AND t.claim_agent_id IS NULL
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
            WHERE t.status IN ('new', 'open') AND t.claim_expires_at <= now()
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

    // MARK: - Helpers

    /// The ticket's row lock and whether its claim is live (`TicketStore.lock`).
    func lockTicket(_ id: UUID, on connection: PostgresConnection) async throws -> (Ticket, claimLive: Bool) {
        try await tickets.lock(id, on: connection)
    }

    static func single(_ rows: PostgresRowSequence) async throws -> Ticket {
        for try await row in rows { return try Ticket(row: row) }
        throw RowNotFound("a ticket UPDATE … RETURNING")
    }

    static func claimHeld(_ claim: (agentID: UUID, expiresAt: Date), holderName: String? = nil) -> Problem {
        let holder = holderName.map { "\($0) (agent \(claim.agentID.lowercased))" } ?? "Agent \(claim.agentID.lowercased)"
        var problem = Problem(
            .claimHeld, status: .conflict, title: "Claimed by another agent",
            detail: "\(holder) holds this ticket until \(timestamp(claim.expiresAt)).")
        var members: [String: Problem.Member] = [
            "agent_id": .string(claim.agentID.lowercased), "expires_at": .string(timestamp(claim.expiresAt)),
        ]
        if let holderName { members["agent_name"] = .string(holderName) }
        problem.members["claim"] = .object(members)
        return problem
    }

    /// `claim-held`, naming the holder by name as well ("佐藤 holds this ticket"): the colleague to
    /// ask, which an id alone does not tell the agent who was turned away. Read in the caller's
    /// transaction, before it is rolled back.
    static func claimHeld(_ claim: (agentID: UUID, expiresAt: Date), on connection: PostgresConnection, logger: Logger) async -> Problem {
        var name: String?
        if let rows = try? await connection.run("SELECT display_name FROM agents WHERE id = \(claim.agentID)", logger: logger) {
            do {
                for try await found in rows.decode(String.self) { name = found }
            } catch {
                name = nil
            }
        }
        return claimHeld(claim, holderName: name)
    }

    static func timestamp(_ date: Date?) -> String {
        guard let date else { return "" }
        return date.formatted(.iso8601)
    }
}

/// The claim statement, prepared once per connection under its name: it is the hottest statement an
/// agent runs, and parsing and planning it took longer than running it (1.3 + 2.2 ms against 0.5 ms).
/// `madoguchi bench claim-next` hands its `sql` to pgbench unchanged.
package struct ClaimNextStatement: PostgresPreparedStatement {
    package static let name = "madoguchi_claim_next"
    package static var sql: String { TicketWork.claimNextSQL }
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
