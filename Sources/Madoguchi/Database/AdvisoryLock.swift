import Logging
import PostgresNIO

/// Transaction-scoped PostgreSQL advisory locks on a text key: held until commit or rollback.
///
/// They serialize work on something that has no row to lock yet (an identity about to be created,
/// a provider's message id about to be taken in), so two concurrent requests cannot both miss each
/// other's uncommitted row.
enum AdvisoryLock {
    static func take(_ key: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 0))", logger: logger)
    }
}
