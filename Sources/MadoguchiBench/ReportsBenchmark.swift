import Foundation
import Logging
import Madoguchi
import PostgresNIO

/// `madoguchi bench reports`: seeds a year of a support desk, then for each report endpoint the
/// latency over HTTP next to the very same statement run by a bare PostgreSQL client in the same run
/// (the service's overhead: parameters, JSON, HTTP), and a CSV export's rows per second with the
/// process's memory growth while streaming it.
public struct ReportsBenchmark: Sendable {
    public var tickets: Int
    public var requests: Int
    package var kinds: [ReportKind]

    package init(tickets: Int, requests: Int, kinds: [ReportKind] = ReportKind.allCases) {
        self.tickets = tickets
        self.requests = requests
        self.kinds = kinds
    }

    public func run(logger: Logger, report: @escaping @Sendable (String) -> Void) async throws {
        try await BenchmarkSupport.withCluster(logger: logger, maxConnections: 100) { cluster in
            try await BenchmarkSupport.withService(on: cluster, logger: logger) { port, database in
                let seeded = try await ReportSeeder(tickets: tickets).run(database, logger: logger) { report("seed  " + $0) }
                report(String(format: "seeded %d tickets, %d messages in %.1f s (%.0f messages/s)",
                              seeded.tickets, seeded.messages, seeded.seconds, seeded.messagesPerSecond))
                let folded = try await ReportSeeder.computeClosedPeriods(database, logger: logger)
                report(String(format: "response-time and SLA periods computed in %.1f s (the rollup worker's first fold after a seed)", folded))
                let key = try await database.withConnection { try await APIKeyStore(logger: logger).create(name: "bench dashboard", role: .dashboard, agentID: nil, on: $0).1.text }
                try await measure(port: port, database: database, key: key, logger: logger, report: report)
            }
        }
    }

    private func measure(port: Int, database: Database, key: String, logger: Logger, report: @Sendable (String) -> Void) async throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
        func day(_ offset: Int) -> String {
            let parts = calendar.dateComponents([.year, .month, .day], from: calendar.date(byAdding: .day, value: offset, to: Date())!)
            return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
        }
        let (from, to) = (day(-365), day(0))
        report("a year (\(from) to \(to)) by day, Asia/Tokyo; \(requests) requests each, one at a time")
        report("report           service p50/p95 ms   bare client p50/p95 ms   service/bare (p50)")
        for kind in kinds {
            let path = "/v1/reports/\(kind.rawValue)?from=\(from)&to=\(to)"
            let request = try ReportRequest(from: from, to: to, granularity: .day, timeZone: nil, filters: .init())
            let service = try await BenchmarkSupport.onThread { [requests] in
                let http = try LoopbackHTTPClient(port: port)
                return try (0..<requests).map { _ -> Double in
                    let start = DispatchTime.now()
                    let status = try http.send("GET", path, headers: ["Authorization": "Bearer \(key)"])
                    guard status == 200 else { throw BenchmarkError("\(path) answered \(status)") }
                    return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                }
            }
            // The same statement on one connection, prepared as the service prepares it, with the
            // service's session settings (JIT off: migration 0054 makes it the role's default).
            var bare: [Double] = []
            try await database.withConnection { connection in
                for _ in 0..<requests {
                    let start = DispatchTime.now()
                    _ = try await kind.runAsTheServiceDoes(request, on: connection, logger: logger)
                    bare.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
                }
            }
            let (s, b) = (Self.percentiles(service), Self.percentiles(bare))
            report(kind.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)
                   + String(format: "  %9.1f / %-9.1f  %12.1f / %-9.1f  %8.2f", s.p50, s.p95, b.p50, b.p95, s.p50 / b.p50))
            if kind == .volume {
                // What the rollup replaces: the same counts by a plain GROUP BY over the rows.
                var plain: [Double] = []
                try await database.withConnection { connection in
                    for _ in 0..<requests {
                        let start = DispatchTime.now()
                        for try await _ in try await connection.query("""
                            SELECT date_trunc('day', at AT TIME ZONE 'Asia/Tokyo'), channel,
                                   count(*) FILTER (WHERE kind = 'ticket'), count(*) FILTER (WHERE kind = 'message')
                            FROM report_arrivals
                            WHERE at >= (\(from)::date)::timestamp AT TIME ZONE 'Asia/Tokyo'
                              AND at < (\(to)::date + 1)::timestamp AT TIME ZONE 'Asia/Tokyo'
                            GROUP BY 1, 2
                            """, logger: logger) {}
                        plain.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
                    }
                }
                let g = Self.percentiles(plain)
                report(String(format: "  plain GROUP BY over the rows: %.1f / %.1f ms (p50/p95); service is %.1fx faster (p50)", g.p50, g.p95, g.p50 / s.p50))
            }
        }
        try await measureCSV(port: port, key: key, from: from, to: to, report: report)
    }

    /// Every SLA breach of the year as CSV through curl, rows per second, and how much this process's
    /// resident memory (the service runs in it) grew at its peak while streaming.
    private func measureCSV(port: Int, key: String, from: String, to: String, report: @Sendable (String) -> Void) async throws {
        let output = try EmbeddedPostgres.makeTemporaryDirectory(prefix: "madoguchi-csv") + "/breaches.csv"
        let before = Self.residentBytes()
        let sampling = Task {
            var peak = before
            while !Task.isCancelled {
                peak = max(peak, Self.residentBytes())
                try? await Task.sleep(for: .milliseconds(20))
            }
            return peak
        }
        let start = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sf", "-o", output, "-H", "Authorization: Bearer \(key)",
                             "http://127.0.0.1:\(port)/v1/reports/sla-breaches?from=\(from)&to=\(to)&format=csv"]
        try process.run()
        try await BenchmarkSupport.onThread { process.waitUntilExit() }
        let seconds = Date().timeIntervalSince(start)
        sampling.cancel()
        let peak = await sampling.value
        guard process.terminationStatus == 0 else { throw BenchmarkError("curl failed with status \(process.terminationStatus)") }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: output))
        let rows = bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) } - 1
        try? FileManager.default.removeItem(atPath: output)
        report(String(format: "CSV sla-breaches: %d rows, %.1f MB in %.2f s = %.0f rows/s; resident memory %.0f MB before, peak +%.1f MB",
                      rows, Double(bytes.count) / 1e6, seconds, Double(rows) / seconds, Double(before) / 1e6, Double(peak - before) / 1e6))
    }

    static func percentiles(_ values: [Double]) -> (p50: Double, p95: Double) {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return (0, 0) }
        func at(_ fraction: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))] }
        return (at(0.5), at(0.95))
    }

    /// VmRSS of this process, from /proc.
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }
}
