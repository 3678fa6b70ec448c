import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Gives waiting tickets of auto-assigned queues to available agents (`assign_waiting_tickets`,
/// migration 0030), outside the transactions that open tickets so that ingest never waits on it.
///
/// While some queue auto-assigns, it runs after every commit that wrote events (a ticket opened, an
/// agent went available, a ticket was solved and freed capacity), at most every `minimumInterval`,
/// and every `pollInterval` regardless. While none does, it holds no connection at all: it looks
/// again every `idleInterval`, or at once when this process switches a queue on (`AssignmentTrigger`).
/// Any number of these, in any number of processes, take turns on one advisory lock, so a ticket is
/// assigned once and capacity holds.
struct AssignmentWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    let notifier: EventNotifier?
    var trigger = AssignmentTrigger()
    var pollInterval: Duration = .seconds(5)
    var idleInterval: Duration = .seconds(60)
    var minimumInterval: Duration = .milliseconds(100)
    /// Tickets assigned in one transaction; a bigger backlog takes several in a row.
    static let batch = 200

    func run() async throws {
        await migrator.waitUntilCurrent(database, logger: logger)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let seen = notifier?.generation ?? 0
            let pulled = trigger.pulls
            let started = ContinuousClock.now
            var active = false
            do {
                active = try await database.withConnection { try await Self.anyQueueAutoAssigns(on: $0, logger: logger) }
                if active {
                    var assigned = Self.batch
                    while assigned == Self.batch, !Task.isShuttingDownGracefully {
                        assigned = try await assignRound()
                    }
                }
            } catch {
                logger.warning("auto-assignment round failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            let pause = minimumInterval - (ContinuousClock.now - started)
            if pause > .zero { try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) } }
            if active, let notifier {
                await notifier.wait(after: seen, upTo: pollInterval)
            } else {
                await trigger.wait(after: pulled, upTo: active ? pollInterval : idleInterval)
            }
        }
    }

    /// One transaction of assignments, each with its `ticket.assigned` event. Returns how many.
    func assignRound() async throws -> Int {
        try await database.withTransaction { connection in
            let assigned = try await TicketStore(logger: logger).assignWaiting(batch: Self.batch, on: connection)
            let events = EventStore(logger: logger)
            for assignment in assigned {
                try await events.record(
                    .ticketAssigned, ticketID: assignment.ticketID, customerID: assignment.customerID, actor: nil,
                    data: ["agent_id": assignment.agentID.lowercased, "queue": assignment.queue as Any,
                           "via": assignment.mode, "version": assignment.version],
                    on: connection)
            }
            return assigned.count
        }
    }

    static func anyQueueAutoAssigns(on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.run("SELECT EXISTS (SELECT 1 FROM queues WHERE auto_assign <> 'off')", logger: logger)
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }
}

/// Tells this process's assignment worker that a queue may have begun auto-assigning, so it looks
/// now rather than at its next idle check. Checked in memory every quarter second: no connection,
/// no task left waiting.
final class AssignmentTrigger: Sendable {
    private let count = Mutex(0)

    var pulls: Int { count.withLock { $0 } }

    func pull() { count.withLock { $0 += 1 } }

    /// Returns once `pull` was called since `pulls` read `seen`, after `timeout`, or at shutdown.
    func wait(after seen: Int, upTo timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while pulls == seen, ContinuousClock.now < deadline, !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
    }
}
