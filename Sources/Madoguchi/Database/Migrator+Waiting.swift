import Logging
import ServiceLifecycle

extension Migrator {
    /// Returns once `database` has every migration this binary knows, or when the service group
    /// shuts down. Background workers call it first: they never migrate, a server does, and a worker
    /// started beside a server that is still migrating must not read tables that are not there yet.
    /// A group that fails (a migration the server refuses) cancels rather than shuts down: cancelled,
    /// the sleep below returns at once, so without the check this spun forever and the process never
    /// exited.
    ///
    /// Why it still waits is logged every 30 seconds: a worker that silently never started (the
    /// database unreachable, the schema behind) was a mystery in its log. Not before the first 30:
    /// a server's own workers wait a moment for its migrations on every first start, and a warning
    /// per worker then only alarmed whoever read the log.
    func waitUntilCurrent(_ database: Database, logger: Logger) async {
        var lastSaid = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let reason: String
            do {
                if try await database.withConnection({ try await status($0, logger: logger) }).complete { return }
                reason = "the database lacks migrations this binary needs (the server applies them as it starts)"
            } catch {
                reason = String(reflecting: error)
            }
            if ContinuousClock.now - lastSaid >= .seconds(30) {
                logger.warning("waiting for the database schema before starting", metadata: ["reason": "\(reason)"])
                lastSaid = .now
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
    }
}
