import Foundation
import Logging
import PostgresNIO

/// Removes events older than the retention period, in batches and in feed order (up to the first
/// one still young, never one an active webhook has yet to receive; `event_removals` keeps where it
/// got to), and the webhook delivery log's attempts as old. The only writer allowed to delete
/// from `events` (it sets `madoguchi.retention` for its own transaction; the append-only trigger
/// refuses everyone else).
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
            try await connection.perform("SET LOCAL madoguchi.retention = 'on'", logger: logger)
            let slowest = try await WebhookStore(logger: logger).slowestCursor(on: connection)
            // A prefix of the feed, in its order, up to the first event still young: what is left is
            // then exactly what lies above the mark, and a cursor below it knows it missed events.
            let rows = try await connection.run("""
                WITH next AS (
                    SELECT id, xid, occurred_at FROM events
                    WHERE \(slowest.map { String($0.xid) })::xid8 IS NULL OR (xid, id) <= (\(slowest.map { String($0.xid) })::xid8, \(slowest?.eventID))
                    ORDER BY xid, id
                    LIMIT \(batch)
                ), young AS (
                    SELECT xid, id FROM next WHERE occurred_at >= now() - make_interval(days => \(Int32(days))) ORDER BY xid, id LIMIT 1
                ), gone AS (
                    DELETE FROM events e USING next
                    WHERE e.id = next.id AND NOT EXISTS (SELECT FROM young y WHERE (next.xid, next.id) >= (y.xid, y.id))
                    RETURNING e.xid, e.id
                ), last AS (
                    SELECT xid, id FROM gone ORDER BY xid DESC, id DESC LIMIT 1
                ), marked AS (
                    INSERT INTO event_removals AS r (through_xid, through_id) SELECT xid, id FROM last
                    ON CONFLICT (singleton) DO UPDATE SET through_xid = EXCLUDED.through_xid, through_id = EXCLUDED.through_id, removed_at = now()
                    WHERE (EXCLUDED.through_xid, EXCLUDED.through_id) > (r.through_xid, r.through_id)
                )
                SELECT count(*)::int FROM gone
                """, logger: logger)
            var count = 0
            for try await removed in rows.decode(Int.self) { count = removed }
            return count
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
