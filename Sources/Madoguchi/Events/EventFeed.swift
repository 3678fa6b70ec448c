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
            "occurred_at": ISO8601DateFormatter().string(from: occurredAt),
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
/// oldest transaction of this database still running (the horizon, see `horizon(on:)`): every such
/// transaction has finished, so no event below the horizon can appear later. Events come in
/// (xid, id) order — a transaction's events together and in their own order, transactions in the
/// order they began — and the cursor is that pair, so nothing is handed out twice.
///
/// The price: one long-running writing transaction holds back everything that began after it until
/// it ends. Madoguchi's transactions are short; a manual `BEGIN` left open in psql would show here.
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
        let rows = try await connection.query("""
            SELECT id, xid::text, type, occurred_at, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data::text
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
        let latest = try await connection.query("""
            SELECT xid::text, id FROM events WHERE xid < \(String(horizon))::xid8 ORDER BY xid DESC, id DESC LIMIT 1
            """, logger: logger)
        for try await (xid, id) in latest.decode((String, Int64).self) {
            let candidate = FeedCursor(xid: UInt64(xid) ?? 0, eventID: id)
            if (candidate.xid, candidate.eventID) > (next.xid, next.eventID) { next = candidate }
        }
        let held = try await connection.query("SELECT EXISTS (SELECT 1 FROM events WHERE xid >= \(String(horizon))::xid8)", logger: logger)
        var heldBack = false
        for try await exists in held.decode(Bool.self) { heldBack = exists }
        return Page(events: events, next: next, heldBack: heldBack)
    }

    /// The oldest transaction of this database still running (or the next transaction id, when none
    /// is): every event of an older transaction is final.
    ///
    /// Transaction ids are cluster-wide, so the snapshot's own `xmin` would let a long transaction in
    /// any other database on the cluster hold this feed back. Only this database's transactions can
    /// write its events, so the horizon is the snapshot's `xmax` lowered to the oldest running (or
    /// prepared) transaction of this database — read after the snapshot, so a transaction with an
    /// id below `xmax` is either listed or already finished. Sessions whose transaction ids this role
    /// may not see (another role, without `pg_read_all_stats`) make it fall back to the cluster-wide
    /// `xmin`, which is always safe.
    private func horizon(on connection: PostgresConnection) async throws -> UInt64 {
        var next: UInt64?
        for try await xmax in try await connection.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", logger: logger).decode(String.self) {
            next = UInt64(xmax)
        }
        guard let next else { throw RowNotFound("SELECT pg_snapshot_xmax(…)") }
        let rows = try await connection.query("""
            WITH here AS (SELECT oid FROM pg_database WHERE datname = current_database())
            SELECT
                ARRAY(SELECT backend_xid::text FROM pg_stat_activity WHERE datid = (SELECT oid FROM here) AND backend_xid IS NOT NULL)
                    || ARRAY(SELECT transaction::text FROM pg_prepared_xacts WHERE database = current_database()),
                EXISTS (SELECT 1 FROM pg_stat_activity WHERE datid = (SELECT oid FROM here) AND NOT pg_has_role(usesysid, 'USAGE'))
                    AND NOT pg_has_role('pg_read_all_stats', 'USAGE'),
                pg_snapshot_xmin(pg_current_snapshot())::text
            """, logger: logger)
        for try await (running, blind, clusterXmin) in rows.decode(([String], Bool, String).self) {
            if blind { return UInt64(clusterXmin) ?? 0 }
            return running.compactMap(UInt32.init).map { Self.fullTransactionID($0, near: next) }.reduce(next, min)
        }
        throw RowNotFound("SELECT … FROM pg_stat_activity")
    }

    /// A 32-bit transaction id of a running transaction as the 64-bit id it stands for: the one at or
    /// below `next` (a running transaction is always within 2³¹ of it).
    static func fullTransactionID(_ xid: UInt32, near next: UInt64) -> UInt64 {
        let candidate = (next & ~0xFFFF_FFFF) | UInt64(xid)
        return candidate > next && candidate >= 1 << 32 ? candidate - (1 << 32) : candidate
    }

    /// The cursor after the newest event there is (below the horizon): to follow from now on.
    func end(on connection: PostgresConnection) async throws -> FeedCursor {
        let horizon = try await self.horizon(on: connection)
        let rows = try await connection.query("""
            SELECT xid::text, id FROM events WHERE xid < \(String(horizon))::xid8 ORDER BY xid DESC, id DESC LIMIT 1
            """, logger: logger)
        for try await (xid, id) in rows.decode((String, Int64).self) { return FeedCursor(xid: UInt64(xid) ?? 0, eventID: id) }
        return .start
    }

    // MARK: - The installation's cursor key

    /// This installation's id and cursor-signing key, made on first use.
    func key(on connection: PostgresConnection) async throws -> FeedCursor.Key {
        if let key = try await storedKey(on: connection) { return key }
        var secret = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in secret.indices { secret[index] = UInt8.random(in: .min ... .max, using: &generator) }
        try await connection.query("""
            INSERT INTO installation (id, cursor_key) VALUES (\(UUID()), \(ByteBuffer(bytes: secret))) ON CONFLICT (singleton) DO NOTHING
            """, logger: logger)
        guard let key = try await storedKey(on: connection) else { throw RowNotFound("SELECT … FROM installation") }
        return key
    }

    private func storedKey(on connection: PostgresConnection) async throws -> FeedCursor.Key? {
        let rows = try await connection.query("SELECT id, cursor_key FROM installation", logger: logger)
        for try await (id, stored) in rows.decode((UUID, ByteBuffer).self) { return FeedCursor.Key(installation: id, secret: Array(buffer: stored)) }
        return nil
    }
}
