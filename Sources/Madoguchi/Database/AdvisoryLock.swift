import Logging
import PostgresNIO

/// Transaction-scoped PostgreSQL advisory locks on a text key: held until commit or rollback.
///
/// They serialize work on something that has no row to lock yet (an identity about to be created,
/// a provider's message id about to be taken in), so two concurrent requests cannot both miss each
/// other's uncommitted row.
enum AdvisoryLock {
    static func take(_ key: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.perform("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 0))", logger: logger)
    }

    /// Several keys in one round trip, taken one after the other in the order given (callers keep
    /// one order for keys they share, so two transactions never wait on each other crosswise).
    static func take(_ keys: [String], on connection: PostgresConnection, logger: Logger) async throws {
        if keys.count == 1 { return try await take(keys[0], on: connection, logger: logger) }
        guard !keys.isEmpty else { return }
        try await connection.perform("""
            SELECT count(*) FROM (
                SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
                FROM unnest(\(keys)::text[]) WITH ORDINALITY AS keys(key, n)
                ORDER BY n
            ) AS taken
            """, logger: logger)
    }
}
