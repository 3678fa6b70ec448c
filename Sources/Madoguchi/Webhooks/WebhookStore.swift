import Foundation
import Logging
import PostgresNIO

/// The SQL behind webhook endpoints and their delivery log. Changes the worker makes are
/// conditional on its claim, like the outbox's.
struct WebhookStore: Sendable {
    let logger: Logger

    func create(url: String, description: String?, eventTypes: [String], secret: String, startingAfter cursor: FeedCursor,
                on connection: PostgresConnection) async throws -> WebhookEndpoint {
        try await single(connection.run("""
            INSERT INTO webhook_endpoints (url, description, event_types, secrets, cursor_xid, cursor_event)
            VALUES (\(url), \(description), \(eventTypes), \([secret]), \(String(cursor.xid))::xid8, \(cursor.eventID))
            RETURNING \(unescaped: WebhookEndpoint.columns)
            """, logger: logger))
    }

    func list(on connection: PostgresConnection) async throws -> [WebhookEndpoint] {
        let rows = try await connection.run("SELECT \(unescaped: WebhookEndpoint.columns) FROM webhook_endpoints ORDER BY created_at", logger: logger)
        var endpoints: [WebhookEndpoint] = []
        for try await row in rows { endpoints.append(try WebhookEndpoint(row: row)) }
        return endpoints
    }

    func endpoint(_ id: UUID, lock: Bool = false, on connection: PostgresConnection) async throws -> WebhookEndpoint {
        let rows = try await connection.run(
            "SELECT \(unescaped: WebhookEndpoint.columns) FROM webhook_endpoints WHERE id = \(id) \(unescaped: lock ? "FOR UPDATE" : "")", logger: logger)
        for try await row in rows { return try WebhookEndpoint(row: row) }
        throw Problem.notFound("There is no webhook \(id.lowercased).")
    }

    /// Applies the changes; re-enabling clears the failure streak and delivers at once, and so does a
    /// new address (the fix for a receiver that kept failing: tried now, with a fresh streak, not
    /// after the old address's backoff and one failure short of being disabled).
    func update(_ id: UUID, url: String?, description: String?, eventTypes: [String]?, active: Bool?, secrets: [String]?,
                on connection: PostgresConnection) async throws -> WebhookEndpoint {
        try await single(connection.run("""
            UPDATE webhook_endpoints
            SET url = coalesce(\(url), url), description = coalesce(\(description), description),
                event_types = coalesce(\(eventTypes)::text[], event_types), secrets = coalesce(\(secrets)::text[], secrets),
                active = coalesce(\(active), active),
                failure_streak = CASE WHEN (\(active) AND NOT active) OR \(url)::text <> url THEN 0 ELSE failure_streak END,
                disabled_reason = CASE WHEN \(active) THEN NULL ELSE disabled_reason END,
                disabled_at = CASE WHEN \(active) THEN NULL ELSE disabled_at END,
                next_attempt_at = CASE WHEN \(active) OR \(url)::text <> url THEN now() ELSE next_attempt_at END,
                updated_at = now()
            WHERE id = \(id)
            RETURNING \(unescaped: WebhookEndpoint.columns)
            """, logger: logger))
    }

    func delete(_ id: UUID, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("DELETE FROM webhook_endpoints WHERE id = \(id) RETURNING id", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    // MARK: - The worker's side

    /// Active endpoints whose next attempt is due and that no live claim holds.
    func claim(worker: String, lease: Duration, limit: Int, on connection: PostgresConnection) async throws -> [WebhookEndpoint] {
        let rows = try await connection.run("""
            WITH due AS (
                SELECT id FROM webhook_endpoints
                WHERE active AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
                ORDER BY next_attempt_at
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE webhook_endpoints w
            SET claimed_by = \(worker), lease_expires_at = now() + make_interval(secs => \(lease.seconds))
            FROM due WHERE w.id = due.id
            RETURNING \(unescaped: WebhookEndpoint.columns.split(separator: ",").map { "w." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", "))
            """, logger: logger)
        var endpoints: [WebhookEndpoint] = []
        for try await row in rows { endpoints.append(try WebhookEndpoint(row: row)) }
        return endpoints
    }

    /// Where a worker's turn on an endpoint stands.
    enum Standing {
        /// Still active, still claimed by the worker, still posting as it did when claimed.
        case serving
        /// Claimed by the worker, but its address, event types or secrets were changed since.
        case changed
        /// Deleted, disabled or taken over by another worker.
        case gone
    }

    /// `lock`: holds the row (in the caller's transaction) until it commits, so that no change
    /// commits between this look and what the caller writes on its strength.
    func standing(of endpoint: WebhookEndpoint, worker: String, lock: Bool = false, on connection: PostgresConnection) async throws -> Standing {
        let rows = try await connection.run("""
            SELECT url = \(endpoint.url) AND event_types = \(endpoint.eventTypes)::text[] AND secrets = \(endpoint.secrets)::text[]
            FROM webhook_endpoints WHERE id = \(endpoint.id) AND active AND claimed_by = \(worker)
            \(unescaped: lock ? "FOR NO KEY UPDATE" : "")
            """, logger: logger)
        for try await row in rows { return try row.decode(Bool.self) ? .serving : .changed }
        return .gone
    }

    /// The endpoint got (or was passed over for) everything up to `cursor`; the streak is over.
    /// False when the claim is no longer this worker's.
    func advance(_ id: UUID, to cursor: FeedCursor, worker: String, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("""
            UPDATE webhook_endpoints
            SET cursor_xid = \(String(cursor.xid))::xid8, cursor_event = \(cursor.eventID), failure_streak = 0
            WHERE id = \(id) AND claimed_by = \(worker)
            RETURNING id
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Lets go of the claim; the endpoint is looked at again after `delay`.
    func release(_ id: UUID, worker: String, after delay: Duration, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE webhook_endpoints
            SET claimed_by = NULL, lease_expires_at = NULL, next_attempt_at = now() + make_interval(secs => \(delay.seconds))
            WHERE id = \(id) AND claimed_by = \(worker)
            """, logger: logger)
    }

    /// One more failure in a row; returns the streak.
    func recordFailure(_ id: UUID, worker: String, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("""
            UPDATE webhook_endpoints SET failure_streak = failure_streak + 1 WHERE id = \(id) AND claimed_by = \(worker) RETURNING failure_streak
            """, logger: logger)
        for try await streak in rows.decode(Int.self) { return streak }
        return 0
    }

    func disable(_ id: UUID, reason: String, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE webhook_endpoints
            SET active = false, disabled_reason = \(reason), disabled_at = now(), claimed_by = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = \(id)
            """, logger: logger)
    }

    // MARK: - The delivery log

    /// Logs an attempt, numbered after the event's earlier automatic attempts (a manual one is 1).
    /// The error is the receiver's words (its answer's first bytes): cut, and without NUL, which
    /// PostgreSQL's text refuses. A NUL in one answer failed the page's logging every time, so the
    /// endpoint was taken up at the same events for ever and never counted a failure.
    func log(_ endpointID: UUID, event: FeedEvent, attempt: WebhookAttempt, manual: Bool, on connection: PostgresConnection) async throws -> WebhookDelivery {
        let rows = try await connection.run("""
            INSERT INTO webhook_deliveries (endpoint_id, event_id, webhook_id, attempt, status, error, duration_ms, manual)
            SELECT \(endpointID), \(event.id), \(attempt.webhookID),
                   CASE WHEN \(manual) THEN 1 ELSE (
                       SELECT count(*) + 1 FROM webhook_deliveries WHERE endpoint_id = \(endpointID) AND event_id = \(event.id) AND NOT manual
                   ) END,
                   \(attempt.status), \(attempt.error.map { Text.limit($0, 1000) }), \(Int(attempt.duration.seconds * 1000)), \(manual)
            RETURNING \(unescaped: WebhookDelivery.columns)
            """, logger: logger)
        for try await row in rows { return try WebhookDelivery(row: row) }
        throw RowNotFound("INSERT INTO webhook_deliveries … RETURNING")
    }

    func deliveries(of endpointID: UUID, limit: Int, on connection: PostgresConnection) async throws -> [WebhookDelivery] {
        let rows = try await connection.run("""
            SELECT \(unescaped: WebhookDelivery.columns) FROM webhook_deliveries WHERE endpoint_id = \(endpointID)
            ORDER BY created_at DESC LIMIT \(limit)
            """, logger: logger)
        var deliveries: [WebhookDelivery] = []
        for try await row in rows { deliveries.append(try WebhookDelivery(row: row)) }
        return deliveries
    }

    func delivery(_ id: UUID, of endpointID: UUID, on connection: PostgresConnection) async throws -> WebhookDelivery {
        let rows = try await connection.run("""
            SELECT \(unescaped: WebhookDelivery.columns) FROM webhook_deliveries WHERE id = \(id) AND endpoint_id = \(endpointID)
            """, logger: logger)
        for try await row in rows { return try WebhookDelivery(row: row) }
        throw Problem.notFound("Webhook \(endpointID.lowercased) has no delivery \(id.lowercased).")
    }

    /// Forgets up to `limit` delivery attempts older than `days` (the log of `GET …/deliveries`, one
    /// row per event per endpoint and per retry, which would otherwise outgrow the events it logs),
    /// each endpoint's oldest first through its own index. Returns how many.
    func forgetDeliveries(olderThan days: Int, limit: Int, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("""
            WITH old AS (
                SELECT d.id FROM webhook_endpoints w
                CROSS JOIN LATERAL (SELECT id FROM webhook_deliveries
                                    WHERE endpoint_id = w.id AND created_at < now() - make_interval(days => \(Int32(days)))
                                    ORDER BY created_at LIMIT \(limit)) AS d
                LIMIT \(limit)
            )
            DELETE FROM webhook_deliveries d USING old WHERE d.id = old.id
            RETURNING d.id
            """, logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    /// The feed position no active endpoint has passed yet: retention keeps everything from there on.
    func slowestCursor(on connection: PostgresConnection) async throws -> FeedCursor? {
        let rows = try await connection.run("""
            SELECT cursor_xid::text AS cursor_xid_text, cursor_event FROM webhook_endpoints WHERE active ORDER BY cursor_xid, cursor_event LIMIT 1
            """, logger: logger)
        for try await (xid, event) in rows.decode((String, Int64).self) { return FeedCursor(xid: UInt64(xid) ?? 0, eventID: event) }
        return nil
    }

    private func single(_ rows: PostgresRowSequence) async throws -> WebhookEndpoint {
        for try await row in rows { return try WebhookEndpoint(row: row) }
        throw Problem.notFound("There is no such webhook.")
    }
}
