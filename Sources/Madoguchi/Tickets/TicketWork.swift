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
            // Share-locked as a hand-over's assignee is (`isActive`): a claim in flight while the
            // agent was deactivated had left the ticket assigned to someone gone.
            guard try await isActive(agent: agentID, on: connection) else {
                throw Problem(.forbidden, status: .forbidden, title: "Forbidden",
                              detail: "Agent \(agentID.lowercased) was deactivated and claims no ticket.")
            }
            let claimed = try await tickets.claim(ticketID, for: agentID, leaseSeconds: lease.seconds, on: connection)
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
            let released = try await tickets.releaseClaim(ticketID, on: connection)
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
        // On a bare connection: one statement, committed on its own, no BEGIN and COMMIT around it.
        try await database.withConnection { connection in
            try await tickets.claimNext(for: agentID, leaseSeconds: lease.seconds, keyID: principal.keyID, on: connection)
        }
    }

    // MARK: - Helpers

    /// The ticket's row lock and whether its claim is live (`TicketStore.lock`).
    func lockTicket(_ id: UUID, on connection: PostgresConnection) async throws -> (Ticket, claimLive: Bool) {
        try await tickets.lock(id, on: connection)
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
