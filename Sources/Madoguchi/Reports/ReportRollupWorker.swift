import Logging
import PostgresNIO
import ServiceLifecycle

/// Folds the changes that ingest and ticket edits append to the report rollups into their counts
/// (`compact_report_arrivals`, migration 0035), so that the changes table stays small and a report
/// reads few rows. Reports are exact without it (they add the unfolded changes); it only keeps them
/// fast. Runs in `madoguchi serve` and `madoguchi worker`; any number may run at once.
struct ReportRollupWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    var interval: Duration = .seconds(5)
    /// Changes folded per transaction; a larger pile takes several in a row.
    static let batch = 100_000

    func run() async throws {
        while !Task.isShuttingDownGracefully, !(await schemaIsCurrent()) {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                while try await foldOnce() == Self.batch, !Task.isShuttingDownGracefully {}
            } catch {
                logger.warning("report rollup fold failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One fold, in its own transaction; returns how many changes it folded.
    func foldOnce() async throws -> Int {
        try await database.withConnection { connection in
            let rows = try await connection.query("SELECT compact_report_arrivals(\(Self.batch)::integer)", logger: logger)
            for try await folded in rows.decode(Int64.self) { return Int(folded) }
            return 0
        }
    }

    private func schemaIsCurrent() async -> Bool {
        (try? await database.withConnection { try await migrator.status($0, logger: logger) }.complete) ?? false
    }
}
