import Crypto
import Foundation
import Logging
import PostgresNIO

/// One event as the feed hands it out.
struct FeedEvent: Sendable {
    var id: Int64
    /// The transaction that wrote it.
    var xid: UInt64
    var type: String
    var occurredAt: Date
    var ticketID: UUID?
    var customerID: UUID?
    var messageID: UUID?
    var actorKeyID: UUID?
    var actorAgentID: UUID?
    /// The event's data, a JSON object as stored.
    var data: String

    var cursor: FeedCursor { FeedCursor(xid: xid, eventID: id) }

    /// The event as the feed, the stream and webhooks show it (openapi's `FeedEvent`): sorted keys,
    /// ids lower-case, the time in RFC 3339, `data` as stored.
    func json(key: FeedCursor.Key) throws -> [UInt8] {
        var object: [String: Any] = [
            "id": id, "cursor": cursor.encoded(with: key), "type": type,
            "occurred_at": occurredAt.rfc3339UTC,
            "data": try JSONSerialization.jsonObject(with: Data(data.utf8)),
        ]
        if let ticketID { object["ticket_id"] = ticketID.lowercased }
        if let customerID { object["customer_id"] = customerID.lowercased }
        if let messageID { object["message_id"] = messageID.lowercased }
        if actorKeyID != nil || actorAgentID != nil {
            var actor: [String: Any] = [:]
            if let actorKeyID { actor["key_id"] = actorKeyID.lowercased }
            if let actorAgentID { actor["agent_id"] = actorAgentID.lowercased }
            object["actor"] = actor
        }
        return [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    }
}

/// Reads the event log in the order a follower can rely on.
///
/// Why not `id > cursor`: ids are handed out when a row is inserted, not when its transaction
/// commits, so a reader that has seen id 12 can later find id 11 appear — a transaction that began
/// first and committed last — and a cursor past 12 would skip it forever. Instead every event stores
/// its transaction's id (`xid`), and a read hands out only events whose transaction is older than the
/// oldest transaction still running that could write here (the horizon, see `horizon`): every
/// such transaction has finished, so no event below the horizon can appear later. Events come in
/// (xid, id) order — a transaction's events together and in their own order, transactions in the
/// order they began — and the cursor is that pair, so nothing is handed out twice.
///
/// Every query that reads `xid` as text names that output `xid_text`: an output column called `xid`
/// would be what `ORDER BY xid` sorts by — as text, where "1000" comes before "961", which once made
/// a follower skip every event between transactions 961 and 1000.
///
/// The price: one long-running writing transaction in this database holds back everything that
/// began after it until it ends. Madoguchi's transactions are short; a manual `BEGIN` left open in
/// psql would show here. Another database's transactions do not (see `horizon`).
struct EventFeed: Sendable {
    let logger: Logger

    struct Filter: Sendable {
        var types: [String]?
        var ticketID: UUID?
    }

    struct Page: Sendable {
        var events: [FeedEvent]
        /// Where the next read starts: after the last event returned, or — when the page was not full —
        /// after every event below the horizon, filtered out or not.
        var next: FeedCursor
        /// Committed events exist that an older, still running transaction holds back: they become
        /// readable when it ends, which sends no notification of its own.
        var heldBack = false
    }

    func page(after cursor: FeedCursor, filter: Filter, limit: Int, on connection: PostgresConnection) async throws -> Page {
        let horizon = try await self.horizon(on: connection)
        let rows = try await connection.run("""
            SELECT id, xid::text AS xid_text, type, occurred_at, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data::text
            FROM events
            WHERE (xid, id) > (\(String(cursor.xid))::xid8, \(cursor.eventID)) AND xid < \(String(horizon))::xid8
              AND (\(filter.types)::text[] IS NULL OR type = ANY(\(filter.types)::text[]))
              AND (\(filter.ticketID)::uuid IS NULL OR ticket_id = \(filter.ticketID))
            ORDER BY xid, id
            LIMIT \(limit)
            """, logger: logger)
        var events: [FeedEvent] = []
        for try await (id, xid, type, occurredAt, ticket, customer, message, key, agent, data)
            in rows.decode((Int64, String, String, Date, UUID?, UUID?, UUID?, UUID?, UUID?, String).self)
        {
            events.append(FeedEvent(id: id, xid: UInt64(xid) ?? 0, type: type, occurredAt: occurredAt, ticketID: ticket, customerID: customer,
                                    messageID: message, actorKeyID: key, actorAgentID: agent, data: data))
        }
        if events.count == limit, let last = events.last { return Page(events: events, next: last.cursor, heldBack: false) }
        // Not full: everything below the horizon has been seen, whether the filter kept it or not.
        var next = events.last?.cursor ?? cursor
        if let candidate = try await latest(below: horizon, on: connection), (candidate.xid, candidate.eventID) > (next.xid, next.eventID) {
            next = candidate
        }
        let held = try await connection.run("SELECT EXISTS (SELECT 1 FROM events WHERE xid >= \(String(horizon))::xid8)", logger: logger)
        var heldBack = false
        for try await exists in held.decode(Bool.self) { heldBack = exists }
        return Page(events: events, next: next, heldBack: heldBack)
    }

    /// The oldest transaction that may still write to this database's events: every event of an
    /// older transaction is final.
    ///
    /// Transaction ids are cluster-wide, so the snapshot's own `xmin` would let a long writing
    /// transaction in another database on the same cluster (another application's batch on a
    /// shared server) hold this feed back for as long as it runs. So the horizon is the oldest
    /// transaction the snapshot saw running (`xip`) that is not *proven* to be another database's,
    /// or the snapshot's `xmax` when there is none. Proof is positive only: a backend connected to
    /// another database holding that transaction's id (`pg_stat_activity`), and holding its lock
    /// (`pg_locks`, the same process: a backend slot reused between the two halves of a
    /// `pg_stat_activity` read cannot pass), or a prepared transaction of another database. A
    /// transaction that ended before it could be looked up, or that cannot be seen, counts as ours
    /// and holds the feed, as every transaction did before. (An earlier attempt took "found in
    /// this database" as proof the other way round; a transaction of ours that had just ended then
    /// counted as another's, its events invisible to the snapshot, and a cursor passed them.)
    /// A snapshot leaves out the reader's own transaction, so a read inside a transaction that has
    /// written stops below it too (`least`, which passes over NULL when it has not).
    private func horizon(on connection: PostgresConnection) async throws -> UInt64 {
        let rows = try await connection.run("""
            WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
            here AS MATERIALIZED (SELECT oid FROM pg_database WHERE datname = current_database())
            SELECT least(coalesce(
                (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
                 WHERE NOT EXISTS (
                         SELECT 1 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                         WHERE a.backend_xid = xid(x) AND a.datid <> (SELECT oid FROM here)
                           AND l.locktype = 'transactionid' AND l.transactionid = xid(x) AND l.granted)
                   AND NOT EXISTS (
                         SELECT 1 FROM pg_prepared_xacts p WHERE p.transaction = xid(x) AND p.database <> current_database())),
                (SELECT pg_snapshot_xmax(s) FROM snap)), pg_current_xact_id_if_assigned())::text
            """, logger: logger)
        for try await horizon in rows.decode(String.self) { return UInt64(horizon) ?? 0 }
        throw RowNotFound("the event feed's horizon")
    }

    /// Refuses a cursor below where retention has removed the feed to (`event_removals`): events
    /// after it are gone, and resuming from it would skip them without a word.
    func checkKept(_ cursor: FeedCursor, field: String = "after", on connection: PostgresConnection) async throws {
        if let removedAt = try await removedAfter(cursor, on: connection) {
            throw Problem(.cursorExpired, status: .gone, title: "Cursor expired",
                          detail: """
                              Events after the cursor in \(field) were removed by retention (last on \(removedAt.rfc3339UTC)): \
                              resuming from it would skip them. Read the current state again (tickets, reports), then follow \
                              the feed from its oldest kept event (no cursor).
                              """)
        }
    }

    /// When retention last removed events that come after `cursor`; nil when none was. Asked after a
    /// page is read (a page read before a removal committed is whole; one read after it is caught),
    /// so that a follower reading on from a cursor never passes a removal in silence.
    func removedAfter(_ cursor: FeedCursor, on connection: PostgresConnection) async throws -> Date? {
        // The cursor of a follower that has seen nothing yet (the next cursor of an empty feed):
        // refused, it would be refused again after every poll of a feed retention emptied.
        guard cursor != .start else { return nil }
        let rows = try await connection.run("""
            SELECT removed_at FROM event_removals
            WHERE (through_xid, through_id) > (\(String(cursor.xid))::xid8, \(cursor.eventID))
            """, logger: logger)
        for try await removedAt in rows.decode(Date.self) { return removedAt }
        return nil
    }

    /// When events (or webhook cursors) carry transaction ids this cluster has not reached yet, the
    /// highest of them and the next id it will hand out; nil when all is well. It happens after a
    /// `pg_dump` is restored into a new cluster: the ids come back as data while the new cluster's
    /// counter starts again near zero, so every new event would sort before every old one and each
    /// cursor would wait for ever. Raising the cluster's epoch (`pg_resetwal -e`) mends it (RUNBOOK).
    func idsAhead(on connection: PostgresConnection) async throws -> (recorded: String, next: String, epoch: UInt64)? {
        let rows = try await connection.run("""
            SELECT r.recorded::text, n.next::text, (r.recorded::text::numeric / 4294967296)::bigint + 1
            FROM (SELECT greatest((SELECT max(xid) FROM events), (SELECT max(cursor_xid) FROM webhook_endpoints)) AS recorded) r,
                 (SELECT pg_snapshot_xmax(pg_current_snapshot()) AS next) n
            WHERE r.recorded >= n.next
            """, logger: logger)
        for try await (recorded, next, epoch) in rows.decode((String, String, Int64).self) {
            return (recorded, next, UInt64(epoch))
        }
        return nil
    }

    /// Refuses to read the feed while `idsAhead` finds events ahead of the database's counter: every
    /// new event would sort before them and none would be handed out. The feed is what is broken, so
    /// it is the feed that says so (a managed PostgreSQL, where `pg_resetwal` cannot be run, still
    /// takes mail and replies meanwhile).
    func checkNotStalled(on connection: PostgresConnection) async throws {
        guard let ahead = try await idsAhead(on: connection) else { return }
        logger.error("events carry transaction ids ahead of the database's counter", metadata: ["recorded": "\(ahead.recorded)", "next": "\(ahead.next)"])
        throw Problem(
            .feedStalled, status: .serviceUnavailable, title: "Event feed stalled",
            detail: """
                Events carry transaction ids up to \(ahead.recorded), ahead of the next this database hands out (\(ahead.next)), \
                as after a pg_dump restored into a new cluster: every new event would sort before them, and the feed and webhooks \
                would hand out none. Stop the service and PostgreSQL and run `pg_resetwal -e \(ahead.epoch)` on its data directory, \
                or, where that cannot be run, use up the difference in transaction ids (RUNBOOK, "Backup and restore").
                """)
    }

    /// The cursor after the newest event there is (below the horizon): to follow from now on.
    func end(on connection: PostgresConnection) async throws -> FeedCursor {
        try await latest(below: try await horizon(on: connection), on: connection) ?? .start
    }

    /// The newest event below the horizon, if any.
    private func latest(below horizon: UInt64, on connection: PostgresConnection) async throws -> FeedCursor? {
        let rows = try await connection.run("""
            SELECT xid::text AS xid_text, id FROM events WHERE xid < \(String(horizon))::xid8 ORDER BY xid DESC, id DESC LIMIT 1
            """, logger: logger)
        for try await (xid, id) in rows.decode((String, Int64).self) { return FeedCursor(xid: UInt64(xid) ?? 0, eventID: id) }
        return nil
    }

    // MARK: - The installation's cursor key

    /// This installation's id and cursor-signing key, made on first use.
    func key(on connection: PostgresConnection) async throws -> FeedCursor.Key {
        if let key = try await storedKey(on: connection) { return key }
        var secret = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in secret.indices { secret[index] = UInt8.random(in: .min ... .max, using: &generator) }
        try await connection.perform("""
            INSERT INTO installation (id, cursor_key) VALUES (\(UUID()), \(ByteBuffer(bytes: secret))) ON CONFLICT (singleton) DO NOTHING
            """, logger: logger)
        guard let key = try await storedKey(on: connection) else { throw RowNotFound("SELECT … FROM installation") }
        return key
    }

    private func storedKey(on connection: PostgresConnection) async throws -> FeedCursor.Key? {
        let rows = try await connection.run("SELECT id, cursor_key FROM installation", logger: logger)
        for try await (id, stored) in rows.decode((UUID, ByteBuffer).self) { return FeedCursor.Key(installation: id, secret: Array(buffer: stored)) }
        return nil
    }
}
