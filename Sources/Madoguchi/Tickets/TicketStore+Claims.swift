import Foundation
import Logging
import PostgresNIO

/// Who holds a ticket: claims taken, renewed and released, and what an agent who leaves hands back.
/// (The queue's pull, which picks and claims in one statement, is `ClaimNextStatement`.)
extension TicketStore {
    /// Claims the locked ticket for `agentID` for `leaseSeconds` (a renewal when it is theirs
    /// already); an unassigned ticket becomes theirs.
    func claim(_ ticketID: UUID, for agentID: UUID, leaseSeconds: Double, on connection: PostgresConnection) async throws -> Ticket {
        try await Self.single(connection.run("""
            UPDATE tickets
            SET claim_agent_id = \(agentID), claim_expires_at = now() + make_interval(secs => \(leaseSeconds)),
                assignee_id = coalesce(assignee_id, \(agentID)),
                version = version + 1, updated_at = now()
            WHERE id = \(ticketID)
            RETURNING \(unescaped: Ticket.columns)
            """, logger: logger))
    }

    /// Drops the locked ticket's claim, whoever held it.
    func releaseClaim(_ ticketID: UUID, on connection: PostgresConnection) async throws -> Ticket {
        try await Self.single(connection.run("""
            UPDATE tickets SET claim_agent_id = NULL, claim_expires_at = NULL, version = version + 1, updated_at = now()
            WHERE id = \(ticketID)
            RETURNING \(unescaped: Ticket.columns)
            """, logger: logger))
    }

    /// Drops every claim `agentID` holds, live or lapsed (the agent is leaving); the tickets released.
    func releaseClaims(heldBy agentID: UUID, on connection: PostgresConnection) async throws -> [(ticketID: UUID, customerID: UUID)] {
        let rows = try await connection.run("""
            UPDATE tickets SET claim_agent_id = NULL, claim_expires_at = NULL, version = version + 1, updated_at = now()
            WHERE claim_agent_id = \(agentID)
            RETURNING id, customer_id
            """, logger: logger)
        var released: [(UUID, UUID)] = []
        for try await row in rows.decode((UUID, UUID).self) { released.append(row) }
        return released
    }

    /// Unassigns every open ticket assigned to `agentID` (the agent is leaving), so its queue hands
    /// it out again. A claim of someone else's on it that lapsed goes too: left behind, it kept the
    /// ticket from auto-assignment and from its queue's waiting count (both look for no claim at all).
    /// A colleague's live claim makes the ticket theirs instead: unassigned under it, the ticket was
    /// stranded once the claim lapsed (no assignee, a stale claimer, never waiting). Each ticket with
    /// the assignee it now has (nil: back to its queue).
    func handBackOpenTickets(assignedTo agentID: UUID, on connection: PostgresConnection)
        async throws -> [(ticketID: UUID, customerID: UUID, version: Int64, assignee: UUID?)]
    {
        let rows = try await connection.run("""
            UPDATE tickets SET version = version + 1, updated_at = now(),
                assignee_id = CASE WHEN claim_expires_at > now() AND claim_agent_id <> \(agentID) THEN claim_agent_id END,
                claim_agent_id = CASE WHEN claim_expires_at > now() THEN claim_agent_id END,
                claim_expires_at = CASE WHEN claim_expires_at > now() THEN claim_expires_at END
            WHERE assignee_id = \(agentID) AND status IN \(unescaped: Ticket.openStatuses)
            RETURNING id, customer_id, version, assignee_id
            """, logger: logger)
        var handedBack: [(UUID, UUID, Int64, UUID?)] = []
        for try await row in rows.decode((UUID, UUID, Int64, UUID?).self) { handedBack.append(row) }
        return handedBack
    }

    /// A ticket auto-assignment gave an agent, and how (`round_robin` or `balanced`, as its queue
    /// says).
    struct Assignment: Sendable {
        let ticketID: UUID
        let customerID: UUID
        let agentID: UUID
        let queue: String?
        let mode: String
        let version: Int64
    }

    /// Assigns up to `batch` waiting tickets of the auto-assigning queues to agents on duty
    /// (`assign_waiting_tickets`, migration 0070: the choice of agent is SQL's, made under the
    /// rows' locks).
    func assignWaiting(batch: Int, on connection: PostgresConnection) async throws -> [Assignment] {
        let rows = try await connection.run("""
            SELECT ticket_id, customer_id, agent_id, queue, mode, version FROM assign_waiting_tickets(\(batch)::integer)
            """, logger: logger)
        var assigned: [Assignment] = []
        for try await (ticket, customer, agent, queue, mode, version) in rows.decode((UUID, UUID, UUID, String?, String, Int64).self) {
            assigned.append(.init(ticketID: ticket, customerID: customer, agentID: agent, queue: queue, mode: mode, version: version))
        }
        return assigned
    }

    /// The one ticket an `UPDATE … RETURNING` of a locked ticket wrote.
    static func single(_ rows: PostgresRowSequence) async throws -> Ticket {
        for try await row in rows { return try Ticket(row: row) }
        throw RowNotFound("a ticket UPDATE … RETURNING")
    }
}
