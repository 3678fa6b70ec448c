import Logging
import ServiceLifecycle

/// Carries on clock resets that a calendar or policy change recorded (`sla_clock_resets`, migration
/// 0075) and that are still unfinished: the request that asked for one stopped before its end (the
/// process restarted, the database went away between two batches). Runs in `madoguchi serve` and
/// `madoguchi worker`; any number may run at once, taking turns batch by batch on one reset (each
/// batch locks the reset's row).
struct SLAClockResetWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    var interval: Duration = .seconds(30)

    func run() async throws {
        func keepGoing() -> Bool { !Task.isShuttingDownGracefully && !Task.isCancelled }
        // The first round, too, after an interval (the schema checked then): a reset is rare, and a
        // process that starts needs no connection of its own at once for one (a test run starts
        // hundreds of servers on one cluster, and ran out of connections).
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        guard keepGoing() else { return }
        await migrator.waitUntilCurrent(database, logger: logger)
        while keepGoing() {
            do {
                // Stopping between two batches loses nothing: the rest stays recorded for the next start.
                try await SLAPolicyStore(logger: logger).runPendingClockResets(in: database, keepGoing: keepGoing)
            } catch {
                // The database may be restarting; the reset waits for the next round, where it stopped.
                logger.warning("carrying on an SLA clock reset failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
