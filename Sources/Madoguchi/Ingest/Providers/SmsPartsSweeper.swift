import Logging
import ServiceLifecycle

/// Runs with the server: once a minute, a multi-part SMS still missing parts after
/// `MADOGUCHI_SMS_PART_WAIT_MINUTES` becomes a message with the gap marked, so a customer's text is
/// never left unseen because a carrier lost one part.
struct SmsPartsSweeper: Service {
    let parts: SmsParts
    let wait: Duration
    var interval: Duration = .seconds(60)

    func run() async throws {
        // Graceful shutdown cancels the sleep; the loop ends with it.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                do {
                    _ = try await parts.releaseStale(olderThan: wait)
                } catch {
                    // The database may be restarting or not migrated yet; the next round tries again.
                    parts.logger.warning("releasing incomplete multi-part SMS failed", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
        }
    }
}
