import Foundation
import Logging
import PostgresNIO

/// The one delete from `events`, for `EventRetention`: it sets `madoguchi.retention` for its own
/// transaction, and the append-only trigger refuses everyone else.
extension EventStore {
    /// Removes up to `batch` of the oldest events, in feed order, older than `days` and no further
    /// than `slowest` (the cursor of the active webhook furthest behind), and moves `event_removals`'
    /// mark to the last one removed. Returns how many went.
    func removeOldest(upTo slowest: FeedCursor?, olderThanDays days: Int, batch: Int, on connection: PostgresConnection) async throws -> Int {
        try await connection.perform("SET LOCAL madoguchi.retention = 'on'", logger: logger)
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
