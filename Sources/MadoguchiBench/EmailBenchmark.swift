import Foundation
import Logging
import Madoguchi
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
    func mailFiles() throws -> [URL] {
        let root = URL(fileURLWithPath: directory)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw BenchmarkError("cannot read \(directory)")
        }
        var files: [URL] = []
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let name = url.lastPathComponent
            if ["json", "jsonl", "md", "txt"].contains(url.pathExtension) && !url.path.contains("/emails/") { continue }
            if name.hasPrefix("LICENSE") || name.hasPrefix("COPYING") { continue }
            files.append(url)
        }
        guard !files.isEmpty else { throw BenchmarkError("no mail files under \(directory)") }
        return files.sorted { $0.path < $1.path }
    }

    func mails() throws -> [[UInt8]] {
        try mailFiles().map { [UInt8](try Data(contentsOf: $0)) }
    }

    /// The parser alone, on one core, for `seconds`.
    static func parserRate(_ mails: [[UInt8]], seconds: Int) -> (mailsPerSecond: Double, megabytesPerSecond: Double) {
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
        return (Double(parsed) / elapsed, Double(bytes) / elapsed / 1_000_000)
    }

    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws {
        let mails = try mails()
        let totalBytes = mails.reduce(0) { $0 + $1.count }
        report("\(mails.count) mails, \(totalBytes / 1024) KiB; \(seconds) s per measurement")

        let parser = Self.parserRate(mails, seconds: seconds)
        report(String(format: "parser:   %8.0f messages/s  %7.1f MB/s", parser.mailsPerSecond, parser.megabytesPerSecond))

        try await BenchmarkSupport.withCluster(logger: logger) { cluster in
            try await measureEndpoint(mails, cluster: cluster, logger: logger, report: report)
        }
    }

    private func measureEndpoint(_ mails: [[UInt8]], cluster: EmbeddedPostgres, logger: Logger, report: @Sendable (String) -> Void) async throws {
        let results = try await BenchmarkSupport.withService(on: cluster, logger: logger) { port, database in
            let key = try await database.withConnection { connection in
                try await APIKeyStore(logger: logger).create(name: "bench gateway", role: .gateway, agentID: nil, on: connection).1.text
            }
            let cpu = MachineCPU.now()
            let driven = try await BenchmarkSupport.drive(port: port, clients: clients, seconds: seconds) { client, sequence in
                // A fresh Message-ID each time, so every post is a new mail, not a replay.
                let mail = Array("Message-ID: <bench-\(client)-\(sequence)@bench>\r\n".utf8) + mails[(client + sequence * clients) % mails.count]
                return .init(path: "/v1/inbound/email", headers: ["Authorization": "Bearer \(key)", "Content-Type": "message/rfc822"], body: mail)
            }
            let serviceCPU = cpu.millisecondsPer(driven.requests)
            try await BenchmarkSupport.reportStatements(database, logger: logger, report: report)
            // The same requests' transactions, for mails spread over the whole corpus; the senders
            // are known by then, as in the measurement's steady state.
            let ownSQL = try await OwnSQLReplay.captureIngest(port: port, cluster: cluster, database: database, logger: logger) { sequence in
                let mail = Array("Message-ID: <bench-capture-\(sequence)@bench>\r\n".utf8) + mails[(sequence * 37) % mails.count]
                return .init(path: "/v1/inbound/email", headers: ["Authorization": "Bearer \(key)", "Content-Type": "message/rfc822"], body: mail)
            }
            return (driven, ownSQL, serviceCPU)
        }
        let (driven, ownSQL, serviceCPU) = results
        let serviceRate = Double(driven.requests) / driven.elapsed
        let replay = try await BenchmarkSupport.pgbenchRun(scripts: ownSQL.scripts, named: "email-own-sql", clients: clients, seconds: seconds, on: cluster)
        let (replayed, ownSQLCPU) = (replay.tps, replay.cpuMillisecondsPerTransaction)
        let baseline = try await BenchmarkSupport.pgbenchStorePayload(
            channel: .email, averageBytes: driven.bytes / max(driven.requests, 1), clients: clients, seconds: seconds, on: cluster)
        report(String(format: "endpoint: %8.1f messages/s  %7.1f MB/s  (%d clients)", serviceRate, Double(driven.bytes) / driven.elapsed / 1_000_000, clients))
        report(String(format: "pgbench replaying the service's own SQL (%d requests' transactions): %8.1f mails/s   service/own SQL %.2f   %.2f round trips a mail",
                      ownSQL.scripts.count, replayed, serviceRate / replayed, ownSQL.roundTrips))
        if let serviceCPU, let ownSQLCPU {
            // Busy time of every process on the machine (the load generator and pgbench included).
            report(String(format: "machine CPU per mail: service %.2f ms, its own SQL through pgbench %.2f ms", serviceCPU, ownSQLCPU))
        }
        report(String(format: "pgbench storing the raw bytes only: %8.0f inserts/s   service/pgbench %.2f   own SQL/pgbench %.2f",
                      baseline, serviceRate / baseline, replayed / baseline))
    }

}
