import Foundation
import Logging
import Madoguchi
import PostgresNIO
import Testing

/// Reports never take what ingest and agents need: at most `MADOGUCHI_REPORT_CONCURRENCY` report
/// statements hold connections at once, and a JSON report stops after
/// `MADOGUCHI_REPORT_TIMEOUT_SECONDS`. A report is made to run as long as the test wants by holding
/// an exclusive lock on the volume rollup's table (which nothing on the request path writes), so the
/// volume report waits on it until the lock is let go.
@Suite("Reports' share of the database", .timeLimit(.minutes(10)))
struct ReportLimitTests {
    static let range = "from=2026-11-01&to=2026-11-02"

    @Test("one report more than MADOGUCHI_REPORT_CONCURRENCY waits, then is 503 reports-busy with Retry-After; ingest and ticket reads go on; the slot frees when the report ends")
    func concurrency() async throws {
        try await TestApp.run(configure: { configuration in
            configuration.reportConcurrency = 1
            configuration.databaseWait = .seconds(2)
        }) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let (gateway, agent) = (try await app.keySecret(.gateway), try await app.keySecret(.agent))
            try await Self.withRollupLocked(app) { release in
                let held = Task { try await app.request(.get, "/v1/reports/volume?\(Self.range)", key: dashboard) }
                try await Self.waitForReportOnLock(app)

                let started = ContinuousClock.now
                let refused = try await app.request(.get, "/v1/reports/backlog?\(Self.range)", key: dashboard)
                try expectProblem(refused, .serviceUnavailable, "reports-busy")
                #expect(refused.headers[.retryAfter] == "5", "\(refused.headers)")
                #expect(ContinuousClock.now - started >= .seconds(2), "refused before MADOGUCHI_DB_WAIT_SECONDS had passed")
                // CSV takes a slot too.
                let refusedCSV = try await app.request(.get, "/v1/reports/sla?\(Self.range)&format=csv", key: dashboard)
                try expectProblem(refusedCSV, .serviceUnavailable, "reports-busy")

                // Everyone else is served meanwhile.
                let form = try await app.request(.post, "/v1/inbound/webform", key: gateway,
                                                 json: #"{"form_id":"contact","submission_id":"during-report","email":"a@example.jp","body":"届きますか"}"#)
                #expect(form.status == .created, "\(form.text)")
                let tickets = try await app.request(.get, "/v1/tickets", key: agent)
                #expect(tickets.status == .ok, "\(tickets.text)")

                release()
                let answered = try await held.value
                #expect(answered.status == .ok, "\(answered.text)")
            }
            // The slot is free again.
            let after = try await app.request(.get, "/v1/reports/backlog?\(Self.range)", key: dashboard)
            #expect(after.status == .ok, "\(after.text)")
        }
    }

    @Test("a JSON report running past MADOGUCHI_REPORT_TIMEOUT_SECONDS is stopped: 503 report-timeout; its connections keep no time limit")
    func timeout() async throws {
        try await TestApp.run(configure: { $0.reportTimeout = .seconds(1) }) { app in
            let dashboard = try await app.keySecret(.dashboard)
            try await Self.withRollupLocked(app) { _ in
                let started = ContinuousClock.now
                let stopped = try await app.request(.get, "/v1/reports/volume?\(Self.range)", key: dashboard)
                try expectProblem(stopped, .serviceUnavailable, "report-timeout")
                #expect(ContinuousClock.now - started >= .seconds(1))
            }
            let answered = try await app.request(.get, "/v1/reports/volume?\(Self.range)", key: dashboard)
            #expect(answered.status == .ok, "\(answered.text)")
            // The limit was the report transaction's own: no pooled connection kept it.
            let settings = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await app.database.withConnection { connection in
                            for try await value in try await connection.query("SHOW statement_timeout", logger: TestCluster.logger).decode(String.self) {
                                try await Task.sleep(for: .milliseconds(200))  // so that the eight hold eight connections
                                return value
                            }
                            return "?"
                        }
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(settings == ["0"], "\(settings)")
        }
    }

    /// Runs `body` while another connection holds `report_arrival_counts` in ACCESS EXCLUSIVE mode,
    /// until `body` calls the release it is given (or returns).
    static func withRollupLocked<Result: Sendable>(
        _ app: TestApp, _ body: (_ release: @escaping @Sendable () -> Void) async throws -> Result
    ) async throws -> Result {
        let (release, releaseSignal) = AsyncStream<Void>.makeStream()
        let (locked, lockedSignal) = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await app.database.withConnection { connection in
                try await connection.perform("BEGIN", logger: TestCluster.logger)
                try await connection.perform("LOCK TABLE report_arrival_counts IN ACCESS EXCLUSIVE MODE", logger: TestCluster.logger)
                lockedSignal.yield()
                for await _ in release { break }
                try await connection.perform("ROLLBACK", logger: TestCluster.logger)
            }
        }
        for await _ in locked { break }
        do {
            let result = try await body { releaseSignal.yield() }
            releaseSignal.yield()
            try await holder.value
            return result
        } catch {
            releaseSignal.yield()
            _ = try? await holder.value
            throw error
        }
    }

    /// Returns once a report's statement waits on a lock (the volume report on the rollup's table).
    static func waitForReportOnLock(_ app: TestApp) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let waiting = try await app.database.withConnection { connection in
                var count = 0
                for try await n in try await connection.query(
                    // A report's statement, not the rollup worker's fold, which may wait on the lock too.
                    """
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE 'WITH params AS%'
                    """,
                    logger: TestCluster.logger
                ).decode(Int.self) { count = n }
                return count
            }
            if waiting > 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("no report came to wait on the rollup's lock")
    }
}
