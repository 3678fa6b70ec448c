import Logging
import ServiceLifecycle

extension Migrator {
    /// Returns once `database` has every migration this binary knows, or when the service group
    /// shuts down. Background workers call it first: they never migrate, a server does, and a worker
    /// started beside a server that is still migrating must not read tables that are not there yet.
    /// A group that fails (a migration the server refuses) cancels rather than shuts down: cancelled,
    /// the sleep below returns at once, so without the check this spun forever and the process never
    /// exited.
    func waitUntilCurrent(_ database: Database, logger: Logger) async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let current = (try? await database.withConnection { try await status($0, logger: logger) }.complete) ?? false
            if current { return }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
    }
}
