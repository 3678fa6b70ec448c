import Foundation
import Logging
import Madoguchi
import Synchronization

/// Every workload of issue 17 that has a benchmark, one after another in one run on this machine,
/// each next to its baseline measured in the same run, written to `bench/results/` as Markdown and
/// JSON with the machine's facts and the commit, so the next change is compared with this one.
///
/// What it runs: mail parsing next to CPython's `email` package on the same files; email ingest,
/// LINE and Twilio (SMS) webhooks and web-form submissions at 1, 8 and 32 clients next to pgbench
/// replaying the service's own SQL for those requests and pgbench storing the same bytes; claim-next at
/// 1, 8 and 32 agents with 0, 10,000 and 100,000 live claims next to pgbench running the service's own
/// claim statement. Each benchmark starts its own throwaway cluster with the durability settings of
/// a real one (synchronous_commit on).
public struct AllBenchmarks: Sendable {
    public var corpus: String
    public var seconds: Int = 5
    public var clientCounts: [Int] = [1, 8, 32]
    public var liveClaims: [Int] = [0, 10_000, 100_000]
    public var output: String = "bench/results"

    public init(corpus: String) { self.corpus = corpus }

    struct Section: Codable {
        var title: String
        var lines: [String]
    }

    public func run(logger: Logger, report: @escaping @Sendable (String) -> Void) async throws {
        let started = Date()
        var sections: [Section] = []

        sections.append(try await section("Parsing: the service's reader next to CPython's email package", report: report) { log in
            log(try parserVersusCPython())
        })
        for clients in clientCounts {
            sections.append(try await section("Email ingest, \(clients) client\(clients == 1 ? "" : "s")", report: report) { log in
                var benchmark = EmailBenchmark(directory: corpus)
                benchmark.seconds = seconds
                benchmark.clients = clients
                try await benchmark.run(logger: logger, report: log)
            })
            sections.append(try await section("LINE and Twilio webhooks and web forms, \(clients) client\(clients == 1 ? "" : "s")", report: report) { log in
                var benchmark = WebhookBenchmark()
                benchmark.seconds = seconds
                benchmark.clients = clients
                try await benchmark.run(logger: logger, report: log)
            })
        }
        for live in liveClaims {
            sections.append(try await section("Claim-next with \(live) live claims", report: report) { log in
                var benchmark = ClaimNextBenchmark()
                benchmark.agentCounts = clientCounts
                benchmark.seconds = seconds
                benchmark.tickets = max(100_000, live * 2)
                benchmark.liveClaims = live
                _ = try await benchmark.run(logger: logger, report: log)
            })
        }
        sections.append(Section(title: "Memory", lines: [
            "peak resident set of this process (the service, its pools and the load generators together): \(Self.peakResidentMegabytes()) MB",
        ]))
        report(sections.last!.lines[0])
        try write(sections, started: started, report: report)
    }

    /// Runs one benchmark, keeping what it prints.
    private func section(
        _ title: String, report: @escaping @Sendable (String) -> Void, _ body: (@escaping @Sendable (String) -> Void) async throws -> Void
    ) async throws -> Section {
        report("\n## \(title)")
        let lines = Mutex<[String]>([])
        try await body { line in
            report(line)
            lines.withLock { $0.append(line) }
        }
        return Section(title: title, lines: lines.withLock { $0 })
    }

    // MARK: - CPython's email package on the same files

    func parserVersusCPython() throws -> String {
        try Self.parserVersusCPython(corpus: corpus, seconds: seconds)
    }

    /// `bench parser`: the reader and CPython's `email` package, each for `seconds`, on every file under `corpus`.
    public static func parserVersusCPython(corpus: String, seconds: Int) throws -> String {
        let script = """
            import email, email.policy, sys, time
            files = []
            for path in sys.stdin.read().split('\\n'):
                if path:
                    with open(path, 'rb') as f:
                        files.append(f.read())
            def parse_all():
                for raw in files:
                    message = email.message_from_bytes(raw, policy=email.policy.default)
                    for part in message.walk():
                        if not part.is_multipart():
                            try:
                                part.get_content()
                            except Exception:
                                part.get_payload(decode=True)
            deadline = time.monotonic() + float(sys.argv[1])
            count = 0
            size = sum(len(raw) for raw in files)
            start = time.monotonic()
            while time.monotonic() < deadline:
                parse_all()
                count += 1
            elapsed = time.monotonic() - start
            print(f"{count * len(files) / elapsed:.0f} {count * size / elapsed / 1e6:.1f} {len(files)}")
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        let files = try EmailBenchmark(directory: corpus).mailFiles()
        process.arguments = ["-c", script, String(seconds)]
        let pipe = Pipe()
        let input = Pipe()
        process.standardOutput = pipe
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data(files.map(\.path).joined(separator: "\n").utf8))
        try input.fileHandleForWriting.close()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let fields = output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard process.terminationStatus == 0, fields.count == 3, let pythonRate = Double(fields[0]) else {
            return "CPython's email package could not be run (/usr/bin/python3): \(output)"
        }
        let ours = EmailBenchmark.parserRate(try EmailBenchmark(directory: corpus).mails(), seconds: seconds)
        return String(format: "parser: %.0f mails/s, %.1f MB/s; CPython email (parse and decode every part, %@ files): %.0f mails/s, %@ MB/s; ratio %.1fx",
                      ours.mailsPerSecond, ours.megabytesPerSecond, fields[2], pythonRate, fields[1], ours.mailsPerSecond / pythonRate)
    }

    // MARK: - Results

    static func peakResidentMegabytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return -1 }
        return kilobytes / 1024
    }

    private func write(_ sections: [Section], started: Date, report: @Sendable (String) -> Void) throws {
        let commit = Self.command("/usr/bin/git", ["rev-parse", "--short", "HEAD"]) ?? "unknown"
        let dirty = (Self.command("/usr/bin/git", ["status", "--porcelain", "--untracked-files=no"]) ?? "").isEmpty ? "" : " (with uncommitted changes)"
        let machine: [String: String] = [
            "cpus": String(ProcessInfo.processInfo.activeProcessorCount),
            "memory_gib": String(ProcessInfo.processInfo.physicalMemory / (1 << 30)),
            "kernel": Self.command("/usr/bin/uname", ["-sr"]) ?? "",
            "postgresql": ((try? EmbeddedPostgres.locateBinaries()).flatMap { Self.command($0 + "/postgres", ["--version"]) }) ?? "",
            "swift": ((Self.command("/usr/bin/env", ["swift", "--version"]) ?? "").split(separator: "\n").first).map(String.init) ?? "",
            // What changes what is measured, written down so a run with other settings cannot pass
            // for this one: the cluster is initdb's (fsync, synchronous_commit, full_page_writes on)
            // plus these.
            "bench_pg_settings": ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_PG_SETTINGS"] ?? "(none)",
            "pgbench_mode": ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_PGBENCH_MODE"] ?? "prepared",
        ]
        let day = ISO8601DateFormatter.string(from: started, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
        let base = "\(output)/\(day)-\(commit)"
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)

        var markdown = "# Benchmarks at \(commit)\(dirty), \(day)\n\n"
        markdown += "Produced by `madoguchi bench all` (release build). Every figure is next to its baseline measured in the same run on the same machine; compare ratios across runs, not absolute figures.\n\n"
        markdown += "Machine: " + machine.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "; ") + "\n"
        for section in sections {
            markdown += "\n## \(section.title)\n\n```\n" + section.lines.joined(separator: "\n") + "\n```\n"
        }
        try markdown.write(toFile: base + ".md", atomically: true, encoding: .utf8)

        struct Results: Codable {
            var commit: String
            var date: String
            var machine: [String: String]
            var sections: [Section]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(Results(commit: commit + dirty, date: day, machine: machine, sections: sections)).write(to: URL(fileURLWithPath: base + ".json"))
        report("\nwritten: \(base).md and \(base).json")
    }

    private static func command(_ path: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 ? output.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }
}
