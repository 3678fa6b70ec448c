import Foundation
import Logging
import PostgresNIO

/// Removes events older than the retention period, in batches and in feed order (up to the first
/// one still young, never one an active webhook has yet to receive; `event_removals` keeps where it
/// got to), and the webhook delivery log's attempts as old. The only use case that deletes from
/// `events` (through `EventStore.removeOldest`; the append-only trigger refuses every other).
struct EventRetention: Sendable {
    let database: Database
    let logger: Logger

    /// What one run removed, and whether it got to the end (or `keepGoing` stopped it between batches).
    struct Run: Sendable {
        var removed = 0
        var finished = true
    }

    /// `keepGoing` is asked before every batch: a worker that runs this between deliveries stops
    /// for its time budget or the process's shutdown, and comes back for the rest.
    @discardableResult
    func removeEvents(olderThan days: Int, batch: Int = 10_000, while keepGoing: () -> Bool = { true }) async throws -> Run {
        try await inBatches(of: batch, olderThan: days, log: "event retention", while: keepGoing) { connection in
            let slowest = try await WebhookStore(logger: logger).slowestCursor(on: connection)
            return try await EventStore(logger: logger).removeOldest(upTo: slowest, olderThanDays: days, batch: batch, on: connection)
        }
    }

    /// The delivery log's attempts older than `days`, in batches. Returns how many went.
    @discardableResult
    func removeDeliveries(olderThan days: Int, batch: Int = 10_000, while keepGoing: () -> Bool = { true }) async throws -> Run {
        try await inBatches(of: batch, olderThan: days, log: "webhook delivery log retention", while: keepGoing) { connection in
            try await WebhookStore(logger: logger).forgetDeliveries(olderThan: days, limit: batch, on: connection)
        }
    }

    /// `removeBatch` in a transaction of its own, again until it removes fewer than `batch` rows or
    /// `keepGoing` says stop; the total, logged when there was any.
    private func inBatches(of batch: Int, olderThan days: Int, log message: Logger.Message, while keepGoing: () -> Bool,
                           _ removeBatch: (PostgresConnection) async throws -> Int) async throws -> Run {
        var run = Run()
        while true {
            guard keepGoing() else {
                run.finished = false
                break
            }
            let count = try await database.withTransaction { connection in try await removeBatch(connection) }
            run.removed += count
            if count < batch { break }
        }
        if run.removed > 0 {
            logger.info(message, metadata: ["removed": "\(run.removed)", "older_than_days": "\(days)", "finished": "\(run.finished)"])
        }
        return run
    }
}
