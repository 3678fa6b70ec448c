import Foundation
import Logging
import MadoguchiMail
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// `madoguchi bench email`: how fast mail is read (the parser alone, MB/s and messages/s) and taken
/// in (the whole endpoint: HTTP, key check, parse, threading, every row), the latter next to pgbench
/// storing the same raw bytes in `inbound_payloads` and nothing else, on the same database: the
/// least any ingest must do. The ratio holds on a noisy machine.
public struct EmailBenchmark: Sendable {
    public var directory: String
    public var seconds: Int = 5
    public var clients: Int = 4

    public init(directory: String) { self.directory = directory }

    /// Every file under `directory` that is not documentation or expectations.
    func mails() throws -> [[UInt8]] {
        let root = URL(fileURLWithPath: directory)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw BenchmarkError("cannot read \(directory)")
        }
        var mails: [[UInt8]] = []
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let name = url.lastPathComponent
            if ["json", "jsonl", "md", "txt"].contains(url.pathExtension) && !url.path.contains("/emails/") { continue }
            if name.hasPrefix("LICENSE") || name.hasPrefix("COPYING") { continue }
            mails.append([UInt8](try Data(contentsOf: url)))
        }
        guard !mails.isEmpty else { throw BenchmarkError("no mail files under \(directory)") }
        return mails
    }

    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws {
        let mails = try mails()
        let totalBytes = mails.reduce(0) { $0 + $1.count }
        report("\(mails.count) mails, \(totalBytes / 1024) KiB; \(seconds) s per measurement")

        // The parser alone, on one core.
        var parsed = 0, bytes = 0
        let start = Date()
        while Date().timeIntervalSince(start) < Double(seconds) {
            for mail in mails {
                _ = ParsedMail(mail)
                parsed += 1
                bytes += mail.count
            }
        }
        let elapsed = Date().timeIntervalSince(start)
        report(String(format: "parser:   %8.0f messages/s  %7.1f MB/s", Double(parsed) / elapsed, Double(bytes) / elapsed / 1_000_000))

        let clusterDirectory = try EmbeddedPostgres.makeTemporaryDirectory(prefix: "madoguchi-bench")
        defer { try? FileManager.default.removeItem(atPath: clusterDirectory) }
        let cluster = try EmbeddedPostgres(directory: clusterDirectory, settings: ["max_connections": "100"], logger: logger)
        _ = try await cluster.start()
        do {
            try await measureEndpoint(mails, cluster: cluster, logger: logger, report: report)
            try await cluster.stop()
        } catch {
            try? await cluster.stop()
            throw error
        }
    }

    private func measureEndpoint(_ mails: [[UInt8]], cluster: EmbeddedPostgres, logger: Logger, report: @Sendable (String) -> Void) async throws {
        try await cluster.createDatabase("bench")
        let registry = PrometheusCollectorRegistry()
        var configuration = Configuration()
        configuration.port = try LoopbackHTTPClient.freePort()
        let database = Database(configuration: cluster.clientConfiguration(database: "bench"), logger: logger, registry: registry)
        let app = try buildApplication(
            configuration: configuration, database: database, migrator: try Migrator.bundled(), registry: registry, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let serving = Task { try await group.run() }
        defer { serving.cancel() }
        try await BenchmarkSupport.waitUntilReady(port: configuration.port)
        let key = try await database.withConnection { connection in
            try await APIKeyStore(logger: logger).create(name: "bench gateway", role: .gateway, agentID: nil, on: connection).1.text
        }

        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        let start = Date()
        let port = configuration.port
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { tasks in
            for client in 0..<clients {
                tasks.addTask {
                    try await BenchmarkSupport.onThread {
                        let http = try LoopbackHTTPClient(port: port)
                        var sent = 0, bytes = 0
                        while Date() < deadline {
                            // A fresh Message-ID each time, so every post is a new mail, not a replay.
                            let mail = Array("Message-ID: <bench-\(client)-\(sent)@bench>\r\n".utf8) + mails[(client + sent * clients) % mails.count]
                            let status = try http.send("POST", "/v1/inbound/email",
                                                       headers: ["Authorization": "Bearer \(key)", "Content-Type": "message/rfc822"], body: mail)
                            guard (200...299).contains(status) else { throw BenchmarkError("inbound/email answered \(status)") }
                            sent += 1
                            bytes += mail.count
                        }
                        return (sent, bytes)
                    }
                }
            }
            return try await tasks.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        let elapsed = Date().timeIntervalSince(start)
        let serviceRate = Double(results.0) / elapsed
        await group.triggerGracefulShutdown()
        _ = try? await serving.value

        let average = results.1 / max(results.0, 1)
        let baseline = try await pgbenchStore(cluster: cluster, averageBytes: average)
        report(String(format: "endpoint: %8.0f messages/s  %7.1f MB/s  (%d clients)", serviceRate, Double(results.1) / elapsed / 1_000_000, clients))
        report(String(format: "pgbench storing the raw bytes only: %8.0f inserts/s   service/pgbench %.2f", baseline, serviceRate / baseline))
    }

    /// pgbench inserting payloads of the average size into inbound_payloads, with as many clients.
    private func pgbenchStore(cluster: EmbeddedPostgres, averageBytes: Int) async throws -> Double {
        let script = "INSERT INTO inbound_payloads (channel, content_type, body) VALUES ('email', 'message/rfc822', convert_to(repeat('x', \(averageBytes)), 'UTF8'));\n"
        return try await BenchmarkSupport.pgbenchTPS(script: script, named: "store-payload", clients: clients, seconds: seconds, on: cluster)
    }
}
