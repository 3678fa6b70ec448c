import Foundation
import Logging
import PostgresNIO

/// The SQL behind SLA policies (`sla_policies`, `sla_targets`).
struct SLAPolicyStore: Sendable {
    let logger: Logger

    func list(on connection: PostgresConnection) async throws -> [SLAPolicy] {
        let rows = try await connection.run("SELECT \(unescaped: SLAPolicy.columns) FROM sla_policies ORDER BY name, id", logger: logger)
        var policies: [SLAPolicy] = []
        for try await row in rows { policies.append(try SLAPolicy(row: row)) }
        return try await withTargets(policies, on: connection)
    }

    /// The version, its row locked until the caller's transaction ends (for `If-Match`); nil if none.
    /// FOR NO KEY UPDATE, as the write itself takes: the foreign-key checks of rows that refer to it
    /// (tickets, claims, events) do not wait on it.
    func lockedVersion(id: UUID, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version FROM sla_policies WHERE id = \(id) FOR NO KEY UPDATE", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return nil
    }

    func policy(id: UUID, on connection: PostgresConnection) async throws -> SLAPolicy {
        let rows = try await connection.run("SELECT \(unescaped: SLAPolicy.columns) FROM sla_policies WHERE id = \(id)", logger: logger)
        for try await row in rows { return try await withTargets([try SLAPolicy(row: row)], on: connection)[0] }
        throw Self.notFound(id)
    }

    /// The name of a policy whose clocks count in `calendar`; nil when none does.
    func policyName(countingIn calendar: UUID, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.run("SELECT name FROM sla_policies WHERE calendar_id = \(calendar) ORDER BY name LIMIT 1", logger: logger)
        for try await name in rows.decode(String.self) { return name }
        return nil
    }

    /// Creates (id nil) or replaces a policy with its targets, in the caller's transaction. Becoming
    /// the default takes the flag from whichever policy had it. (Replaced, its tickets' clocks are
    /// set again, asked for by the caller: `requestClockReset`.)
    /// `precondition`: checked with the policy's row locked, after the default's lock (taken in the
    /// order every save takes them, so two saves never wait on each other's).
    func save(id: UUID?, _ draft: SLAPolicyDraft, precondition: VersionPrecondition? = nil, on connection: PostgresConnection) async throws -> SLAPolicy {
        let name = draft.name.trimmed
        do {
            if draft.isDefault {
                // One default at a time: two policies made default at once each cleared the flag
                // before the other's row existed, and the second met the one-default index, answered
                // as a name clash. Taken in turn, the second clears the first's flag.
                try await AdvisoryLock.take("sla-policy:default", on: connection, logger: logger)
            }
            if let id, let precondition {
                try await precondition.check("SLA policy \(id.lowercased)") { try await lockedVersion(id: id, on: connection) }
            }
            // A calendar never open (one may exist, to say so) would let no clock fall due: the
            // policy's tickets would show `ok` for ever, their breaches unseen.
            let hours = try await connection.run("""
                SELECT EXISTS (SELECT FROM business_hours WHERE calendar_id = \(draft.calendarID)),
                       EXISTS (SELECT FROM business_calendars WHERE id = \(draft.calendarID))
                """, logger: logger)
            for try await (open, exists) in hours.decode((Bool, Bool).self) where exists && !open {
                throw Problem.validationFailed([.init(pointer: "/calendar_id", message: "business calendar \(draft.calendarID.lowercased) has no opening hours: no clock counted in it would ever fall due")])
            }
            if draft.isDefault {
                try await connection.perform(
                    "UPDATE sla_policies SET is_default = false, version = version + 1, updated_at = now() WHERE is_default AND id IS DISTINCT FROM \(id)",
                    logger: logger)
            }
            let rows: PostgresRowSequence
            if let id {
                rows = try await connection.run("""
                    UPDATE sla_policies
                    SET name = \(name), calendar_id = \(draft.calendarID), warning_fraction = \(draft.warningFraction),
                        is_default = \(draft.isDefault), version = version + 1, updated_at = now()
                    WHERE id = \(id)
                    RETURNING id
                    """, logger: logger)
            } else {
                rows = try await connection.run("""
                    INSERT INTO sla_policies (name, calendar_id, warning_fraction, is_default)
                    VALUES (\(name), \(draft.calendarID), \(draft.warningFraction), \(draft.isDefault))
                    RETURNING id
                    """, logger: logger)
            }
            var saved: UUID?
            for try await row in rows.decode(UUID.self) { saved = row }
            guard let saved else { throw Self.notFound(id ?? UUID()) }
            try await connection.perform("DELETE FROM sla_targets WHERE policy_id = \(saved)", logger: logger)
            // Arrays without NULLs: '' stands for every channel and 0 for a clock that does not run.
            let targets = draft.targets
            try await connection.perform("""
                INSERT INTO sla_targets (policy_id, priority, channel, first_response_seconds, next_response_seconds, resolution_seconds)
                SELECT \(saved), priority, nullif(channel, ''), nullif(first, 0) * 60, nullif(next, 0) * 60, nullif(resolution, 0) * 60
                FROM unnest(\(targets.map(\.priority.rawValue))::text[], \(targets.map { $0.channel?.rawValue ?? "" })::text[],
                            \(targets.map { $0.firstResponseMinutes ?? 0 })::int[], \(targets.map { $0.nextResponseMinutes ?? 0 })::int[],
                            \(targets.map { $0.resolutionMinutes ?? 0 })::int[]) AS t(priority, channel, first, next, resolution)
                """, logger: logger)
            return try await policy(id: saved, on: connection)
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "name-taken"), status: .conflict, title: "Name taken", detail: "Another SLA policy is called \(name).")
        } catch where error.sqlState == .foreignKeyViolation {
            throw Problem.validationFailed([.init(pointer: "/calendar_id", message: "there is no business calendar \(draft.calendarID.lowercased)")])
        }
    }

    /// Which policies' tickets a clock reset sets again: one policy, or every policy on a calendar.
    enum ClockScope {
        case policy(UUID)
        case calendar(UUID)
    }

    /// A reset of the running clocks under a scope, recorded (`sla_clock_resets`, migration 0075) and
    /// not yet finished.
    struct ClockReset: Sendable {
        let id: Int64
    }

    /// Asks, in the transaction of the change that moves them, for the running clocks (tickets neither
    /// solved nor closed) under `scope` to be set again. Recorded with the change, the reset is
    /// carried to its end by whoever finds it unfinished (`runClockReset`: the request, else
    /// `SLAClockResetWorker`); asked again before it ends, it starts over from the first ticket.
    func requestClockReset(_ scope: ClockScope, on connection: PostgresConnection) async throws -> ClockReset {
        let (policy, calendar): (UUID?, UUID?) = switch scope {
        case .policy(let id): (id, nil)
        case .calendar(let id): (nil, id)
        }
        let rows = try await connection.run("SELECT request_sla_clock_reset(\(policy)::uuid, \(calendar)::uuid)", logger: logger)
        for try await id in rows.decode(Int64.self) { return ClockReset(id: id) }
        throw Problem.internalError
    }

    /// Runs the reset a change just committed asked for, before its request is answered, so that the
    /// answer comes with every clock set. Should that fail, the change stands and so does the reset's
    /// record, which `SLAClockResetWorker` carries on: the request is not answered 500 for what is done.
    func finishClockReset(_ reset: ClockReset, in database: Database) async {
        do {
            try await runClockReset(reset, in: database)
        } catch {
            logger.warning("SLA clock reset left to the workers", metadata: ["reset": "\(reset.id)", "error": "\(String(reflecting: error))"])
        }
    }

    /// Sets the clocks of a reset from each clock's start in the policy and calendar as they now stand
    /// (`reset_sla_clocks`); each ticket's version goes up, and one whose due times moved gets a
    /// `ticket.updated` event. A few hundred tickets a transaction: at about a millisecond a ticket,
    /// one transaction over a backlog of 10,000 held every one of their rows, and so kept them out
    /// of the queue, for ten seconds. Another process running the same reset takes turns with this
    /// one, batch by batch. Returns once it is finished, or before the next batch once `keepGoing`
    /// says so (what is left stays recorded).
    func runClockReset(
        _ reset: ClockReset, in database: Database, batch: Int = 200, keepGoing: () -> Bool = { !Task.isCancelled }
    ) async throws {
        while true {
            let more: Bool = try await database.withTransaction { connection in
                let rows = try await connection.run(
                    "SELECT taken, finished, announced FROM run_sla_clock_reset(\(reset.id), \(batch)::int)", logger: logger)
                var more = false
                for try await (taken, finished, announced) in rows.decode((Bool, Bool, Int32).self) {
                    more = taken && !finished
                    // Committed with the batch; followers hear of them once the lease ends.
                    if announced > 0 { EventWrites.noteWritten() }
                }
                return more
            }
            guard more, keepGoing() else { return }
        }
    }

    /// Carries on every recorded reset, the one asked for longest ago first (a reset asked again
    /// goes to the back). One that fails is left for the next call and the others go on: a reset
    /// that cannot finish holds up no other.
    func runPendingClockResets(in database: Database, keepGoing: () -> Bool = { !Task.isCancelled }) async throws {
        let pending = try await database.withConnection { connection in
            var ids: [Int64] = []
            let rows = try await connection.run("SELECT id FROM sla_clock_resets ORDER BY requested_at, id", logger: logger)
            for try await id in rows.decode(Int64.self) { ids.append(id) }
            return ids
        }
        for id in pending {
            guard keepGoing() else { return }
            do {
                try await runClockReset(ClockReset(id: id), in: database, keepGoing: keepGoing)
            } catch {
                logger.warning("SLA clock reset failed; tried again in the next round", metadata: ["reset": "\(id)", "error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Removes a policy. False if there was none.
    ///
    /// Its open tickets' clocks stop with it: with no policy the clock trigger no longer moves them,
    /// so due times kept would never be cleared by an answer nor paused by `pending`, and every later
    /// wait would show the old due time again, as a breach of hours or days nobody could meet (in
    /// the queue's order and in the SLA report). Each such ticket gets a `ticket.updated` event naming
    /// the due times that went, as a reset's do. What was measured before stays: a response's or a
    /// solve's due time is kept with it. Solved and closed tickets keep theirs.
    func delete(id: UUID, on connection: PostgresConnection) async throws -> Bool {
        // A reset of its tickets under way (its own, or its calendar's) is locked first, before the
        // tickets (their policy is cleared), in the order a batch takes them: the other way round,
        // the two deadlocked. Its own goes with it.
        try await connection.perform("""
            SELECT 1 FROM sla_clock_resets
            WHERE policy_id = \(id) OR calendar_id = (SELECT calendar_id FROM sla_policies WHERE id = \(id))
            ORDER BY id FOR UPDATE
            """, logger: logger)
        try await connection.perform("DELETE FROM sla_clock_resets WHERE policy_id = \(id)", logger: logger)
        let events = EventStore(logger: logger)
        for stopped in try await TicketStore(logger: logger).stopClocks(ofPolicy: id, on: connection) where !stopped.changes.isEmpty {
            try await events.record(.ticketUpdated, ticketID: stopped.ticketID, customerID: stopped.customerID, actor: nil,
                                    data: ["changes": stopped.changes, "version": stopped.version], on: connection)
        }
        let rows = try await connection.run("DELETE FROM sla_policies WHERE id = \(id) RETURNING id", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    static func notFound(_ id: UUID) -> Problem {
        Problem.notFound("There is no SLA policy \(id.lowercased).")
    }

    private func withTargets(_ policies: [SLAPolicy], on connection: PostgresConnection) async throws -> [SLAPolicy] {
        guard !policies.isEmpty else { return policies }
        var targets: [UUID: [SLAPolicy.Target]] = [:]
        let rows = try await connection.run("""
            SELECT policy_id, priority, channel, first_response_seconds / 60, next_response_seconds / 60, resolution_seconds / 60
            FROM sla_targets WHERE policy_id = ANY(\(policies.map(\.id)))
            ORDER BY array_position(ARRAY['urgent', 'high', 'normal', 'low'], priority), channel NULLS FIRST
            """, logger: logger)
        for try await (policy, priority, channel, first, next, resolution) in rows.decode((UUID, String, String?, Int?, Int?, Int?).self) {
            targets[policy, default: []].append(.init(
                priority: try Ticket.enumeration(priority), channel: try channel.map(Ticket.enumeration),
                firstResponseMinutes: first, nextResponseMinutes: next, resolutionMinutes: resolution))
        }
        return policies.map { policy in
            var policy = policy
            policy.targets = targets[policy.id] ?? []
            return policy
        }
    }
}
