import Logging
import ServiceLifecycle

/// Runs with the server: once an hour, refused provider webhooks (`rejected`: a signature that did
/// not verify) older than `MADOGUCHI_REJECTED_PAYLOAD_DAYS` are removed. Anyone can send those without
/// a key; kept for good, even within `RejectedPayloadBudget`, they would only grow.
struct RejectedPayloadSweeper: Service {
    let database: Database
    let days: Int
    let logger: Logger
    var interval: Duration = .seconds(3600)
    /// The first round waits this long: the server migrates a new database as it starts.
    var firstRound: Duration = .seconds(60)

    func run() async throws {
        // Graceful shutdown cancels the sleep; the loop ends with it.
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: firstRound)
            while !Task.isCancelled {
                do {
                    let removed = try await InboundPayloadStore(logger: logger).removeRejected(olderThanDays: days, database: database)
                    if removed > 0 { logger.info("old refused webhook requests removed", metadata: ["removed": "\(removed)", "days": "\(days)"]) }
                } catch {
                    // The database may be restarting or not migrated yet; the next round tries again.
                    logger.warning("removing old refused webhook requests failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
