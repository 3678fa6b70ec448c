import Logging
import PostgresNIO
import ServiceLifecycle

/// Folds the changes that ingest and ticket edits append to the report rollups into their counts
/// (`compact_report_arrivals` and `compact_report_backlog`, migrations 0035 to 0037), so that the
/// changes tables stay small and a report reads few rows. Reports are exact without it (they add the
/// unfolded changes); it only keeps them fast. Runs in `madoguchi serve` and `madoguchi worker`; any
/// number may run at once.
struct ReportRollupWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    var interval: Duration = .seconds(5)
    /// Changes folded per transaction; a larger pile takes several in a row.
    static let batch = 100_000

    func run() async throws {
        await migrator.waitUntilCurrent(database, logger: logger)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                while try await foldOnce() == Self.batch, !Task.isShuttingDownGracefully {}
            } catch {
                logger.warning("report rollup fold failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One fold of each rollup, each in its own transaction; returns the most changes either count
    /// rollup (arrivals, backlog) folded. The response-time and SLA periods (migration 0038) are
    /// computed as they close, and again when a fact of theirs changed.
    func foldOnce() async throws -> Int {
        try await database.withConnection { connection in
            var most = 0
            for function in ["compact_report_arrivals", "compact_report_backlog"] {
                let rows = try await connection.run(PostgresQuery(unsafeSQL: "SELECT \(function)(\(Self.batch))"), logger: logger)
                for try await folded in rows.decode(Int64.self) { most = max(most, Int(folded)) }
            }
            try await connection.perform("SELECT fold_report_response_periods()", logger: logger)
            return most
        }
    }
}
