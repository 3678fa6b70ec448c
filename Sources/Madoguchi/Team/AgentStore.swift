import Foundation
import Logging
import PostgresNIO

/// The SQL behind agents (`agents`; keys stay with `APIKeyStore`). Every write runs in the caller's
/// transaction and records its events there.
struct AgentStore: Sendable {
    let logger: Logger

    var events: EventStore { EventStore(logger: logger) }

    func list(queue: String?, includeInactive: Bool, on connection: PostgresConnection) async throws -> [Agent] {
        let rows = try await connection.run("""
            SELECT \(unescaped: Agent.columns) FROM agents
            WHERE (active OR \(includeInactive)) AND (\(queue)::text IS NULL OR \(queue) = ANY (queues))
            ORDER BY active DESC, display_name, id
            """, logger: logger)
        var agents: [Agent] = []
        for try await row in rows { agents.append(try Agent(row: row)) }
        return agents
    }

    /// The version, its row locked until the caller's transaction ends (for `If-Match`); nil if none.
    /// FOR NO KEY UPDATE, as the write itself takes: the foreign-key checks of rows that refer to it
    /// (tickets, claims, events) do not wait on it.
    func lockedVersion(id: UUID, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version FROM agents WHERE id = \(id) FOR NO KEY UPDATE", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return nil
    }

    /// `locked`: for the rest of the transaction, against other changes of the agent — FOR NO KEY
    /// UPDATE, which the foreign-key checks of the agent's own claims, replies and events do not wait
    /// on (FOR UPDATE would deadlock with a request of theirs that holds a ticket).
    func agent(id: UUID, locked: Bool = false, on connection: PostgresConnection) async throws -> Agent {
        let rows = try await connection.run("""
            SELECT \(unescaped: Agent.columns) FROM agents WHERE id = \(id) \(unescaped: locked ? "FOR NO KEY UPDATE" : "")
            """, logger: logger)
        for try await row in rows { return try Agent(row: row) }
        throw Self.notFound(id)
    }

    func create(_ draft: AgentChanges, by principal: Principal, on connection: PostgresConnection) async throws -> Agent {
        try await check(draft, agentID: nil, on: connection)
        let created = try await writing(draft) {
            try await Self.single(try await connection.run("""
                INSERT INTO agents (display_name, email, queues, skills, capacity, availability, requires_approval)
                VALUES (\(draft.displayName ?? ""), \(draft.email?.nonEmpty), \(draft.queues ?? []), \(draft.skills ?? []),
                        NULLIF(\(draft.capacity), 0), \(draft.availability?.rawValue ?? "available"), \(draft.requiresApproval ?? false))
                RETURNING \(unescaped: Agent.columns)
                """, logger: logger))
        }
        guard let agent = created else { throw RowNotFound("INSERT INTO agents … RETURNING") }
        try await events.record(.agentCreated, actor: principal, data: ["agent_id": agent.id.lowercased], on: connection)
        return agent
    }

    /// Applies the fields present. An inactive agent cannot be changed (409).
    func update(id: UUID, _ changes: AgentChanges, by principal: Principal, on connection: PostgresConnection) async throws -> Agent {
        let before = try await agent(id: id, locked: true, on: connection)
        guard before.active else {
            throw Problem(Problem.Kind(rawValue: "agent-inactive"), status: .conflict, title: "Agent inactive",
                          detail: "Agent \(id.lowercased) was deactivated and cannot be changed.")
        }
        // Nothing asked for (`{}` from a tool that syncs the team): no new version, which would fail
        // every other writer's If-Match with nothing changed.
        if changes.fieldNames.isEmpty && changes.availability == nil { return before }
        try await check(changes, agentID: id, on: connection)
        let availability = changes.availability?.rawValue
        let updated = try await writing(changes) {
            try await Self.single(try await connection.run("""
                UPDATE agents
                SET display_name = coalesce(\(changes.displayName), display_name),
                    email = CASE WHEN \(changes.email) = '' THEN NULL ELSE coalesce(\(changes.email), email) END,
                    queues = coalesce(\(changes.queues)::text[], queues), skills = coalesce(\(changes.skills)::text[], skills),
                    capacity = CASE WHEN \(changes.capacity) = 0 THEN NULL ELSE coalesce(\(changes.capacity), capacity) END,
                    requires_approval = coalesce(\(changes.requiresApproval), requires_approval),
                    availability_changed_at = CASE WHEN \(availability) <> availability THEN now() ELSE availability_changed_at END,
                    availability = coalesce(\(availability), availability),
                    version = version + 1, updated_at = now()
                WHERE id = \(id)
                RETURNING \(unescaped: Agent.columns)
                """, logger: logger))
        }
        guard let after = updated else { throw Self.notFound(id) }
        if !changes.fieldNames.isEmpty {
            try await events.record(
                .agentUpdated, actor: principal, data: ["agent_id": id.lowercased, "fields": changes.fieldNames, "version": after.version],
                on: connection)
        }
        if before.availability != after.availability {
            try await events.record(
                .agentAvailabilityChanged, actor: principal,
                data: ["agent_id": id.lowercased, "from": before.availability.rawValue, "to": after.availability.rawValue], on: connection)
        }
        return after
    }

    /// The agent leaves: keys revoked, claims released, open tickets back unassigned in their queues
    /// (or to the colleague holding a live claim on one), each with its event. Twice is the same as once.
    func deactivate(id: UUID, by principal: Principal, on connection: PostgresConnection) async throws -> Agent {
        let before = try await agent(id: id, locked: true, on: connection)
        guard before.active else { return before }
        let rows = try await connection.run("""
            UPDATE agents
            SET active = false, deactivated_at = now(), availability = 'offline',
                availability_changed_at = CASE WHEN availability <> 'offline' THEN now() ELSE availability_changed_at END,
                version = version + 1, updated_at = now()
            WHERE id = \(id)
            RETURNING \(unescaped: Agent.columns)
            """, logger: logger)
        guard let after = try await Self.single(rows) else { throw Self.notFound(id) }

        var keysRevoked = 0
        let keys = try await connection.run(
            "UPDATE api_keys SET revoked_at = now() WHERE agent_id = \(id) AND revoked_at IS NULL RETURNING id", logger: logger)
        for try await _ in keys.decode(UUID.self) { keysRevoked += 1 }

        let tickets = TicketStore(logger: logger)
        let released = try await tickets.releaseClaims(heldBy: id, on: connection)
        for (ticket, customer) in released {
            try await events.record(.ticketClaimBroken, ticketID: ticket, customerID: customer, actor: principal,
                                    data: ["agent_id": id.lowercased], on: connection)
        }
        let returned = try await tickets.handBackOpenTickets(assignedTo: id, on: connection)
        for (ticket, customer, version, assignee) in returned {
            // Back to the queue, the change names no `to` (events leave out what is null).
            var change: [String: Any] = ["from": id.lowercased]
            if let assignee { change["to"] = assignee.lowercased }
            try await events.record(.ticketUpdated, ticketID: ticket, customerID: customer, actor: principal,
                                    data: ["changes": ["assignee_id": change], "version": version], on: connection)
        }

        if before.availability != .offline {
            try await events.record(.agentAvailabilityChanged, actor: principal,
                                    data: ["agent_id": id.lowercased, "from": before.availability.rawValue, "to": "offline"], on: connection)
        }
        try await events.record(
            .agentDeactivated, actor: principal,
            data: ["agent_id": id.lowercased, "keys_revoked": keysRevoked, "claims_released": released.count, "tickets_returned": returned.count],
            on: connection)
        return try await agent(id: after.id, on: connection)  // as it now stands: keys revoked, no roles
    }

    func workload(id: UUID, on connection: PostgresConnection) async throws -> AgentWorkload {
        let rows = try await connection.run("""
            SELECT a.capacity, a.availability, agent_workload(a.id),
                   (SELECT count(*) FROM tickets t
                    WHERE t.claim_agent_id = a.id AND t.claim_expires_at > now() AND t.status IN \(unescaped: Ticket.openStatuses)),
                   (SELECT count(*) FROM tickets t WHERE t.assignee_id = a.id AND t.status IN \(unescaped: Ticket.openStatuses)),
                   (SELECT count(*) FROM tickets t
                    WHERE t.assignee_id = a.id AND t.status IN \(unescaped: Ticket.openStatuses) AND t.awaiting_reply_since IS NOT NULL),
                   (SELECT min(t.awaiting_reply_since) FROM tickets t
                    WHERE t.assignee_id = a.id AND t.status IN \(unescaped: Ticket.openStatuses))
            FROM agents a WHERE a.id = \(id)
            """, logger: logger)
        for try await (capacity, availability, open, claimed, assigned, awaiting, oldest)
            in rows.decode((Int32?, String, Int64, Int64, Int64, Int64, Date?).self)
        {
            return AgentWorkload(
                agentID: id, open: Int(open), claimed: Int(claimed), assigned: Int(assigned), awaitingReply: Int(awaiting),
                oldestWaitingSince: oldest, capacity: capacity.map(Int.init), availability: try Ticket.enumeration(availability))
        }
        throw Self.notFound(id)
    }

    // MARK: - Checks

    /// Queues that exist; an address that is no customer's (so a customer's mail never reads as an
    /// agent's, and an agent's reply never goes to themselves).
    private func check(_ changes: AgentChanges, agentID: UUID?, on connection: PostgresConnection) async throws {
        var problems = changes.problems()
        if let queues = changes.queues, !queues.isEmpty {
            let unknown = try await QueueStore(logger: logger).unknown(queues, on: connection)
            for name in unknown {
                problems.append(.init(pointer: "/queues/\(queues.firstIndex(of: name) ?? 0)", message: "there is no queue \(name)"))
            }
        }
        if let email = changes.email?.nonEmpty {
            let rows = try await connection.run("""
                SELECT EXISTS (SELECT 1 FROM customer_identities WHERE kind = 'email' AND value = \(IdentityValue.comparable(email)))
                """, logger: logger)
            for try await taken in rows.decode(Bool.self) where taken {
                problems.append(.init(pointer: "/email", message: "\(email) is a customer's address; an agent needs their own"))
            }
        }
        if !problems.isEmpty { throw Problem.validationFailed(problems) }
    }

    /// Runs a write, answering a second agent with the same address as 409.
    private func writing(_ changes: AgentChanges, _ write: () async throws -> Agent?) async throws -> Agent? {
        do {
            return try await write()
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "email-taken"), status: .conflict, title: "Address taken",
                          detail: "Another active agent has the address \(changes.email ?? "").")
        }
    }

    private static func single(_ rows: PostgresRowSequence) async throws -> Agent? {
        for try await row in rows { return try Agent(row: row) }
        return nil
    }

    static func notFound(_ id: UUID) -> Problem { Problem.notFound("There is no agent \(id.lowercased).") }
}
