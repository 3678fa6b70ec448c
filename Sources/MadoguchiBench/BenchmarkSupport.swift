import Foundation
import Logging
import Madoguchi
import Prometheus
import ServiceLifecycle
import Synchronization

/// What every benchmark shares: pgbench as the raw-PostgreSQL yardstick, the service on a fresh
/// database, and gateway clients driving it.
enum BenchmarkSupport {
    /// Runs the service (with `configure` applied) on a new `bench` database of `cluster` while `body`
    /// runs, and stops it after.
    static func withService<T: Sendable>(
        on cluster: EmbeddedPostgres, logger: Logger, configure: (inout Configuration) -> Void = { _ in },
        _ body: (_ port: Int, _ database: Database) async throws -> T
    ) async throws -> T {
        try await cluster.createDatabase("bench")
        let registry = PrometheusCollectorRegistry()
        var configuration = Configuration()
        // A benchmark measures what the service can do, not what one key is allowed.
        configuration.http.rateLimits = [:]
        configuration.http.providerRateLimit = nil
        configuration.http.wrongKeyRateLimit = nil
        // The port the kernel gives, as the server reports it bound: a port picked free beforehand
        // could be taken before the bind by a server running beside (the test suite runs many), and
        // the benchmark then talked to that one (its keys unknown there: 401).
        configuration.port = 0
        configure(&configuration)
        let database = Database(configuration: cluster.clientConfiguration(database: "bench"), logger: logger, registry: registry)
        let bound = BoundPort()
        let app = try buildApplication(
            configuration: configuration, database: database, migrator: try Migrator.bundled(), registry: registry, logger: logger,
            onServerRunning: { channel in bound.set(channel.localAddress?.port) })
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let serving = Task { try await group.run() }
        defer { serving.cancel() }
        let port = try await bound.value(orFailureOf: serving)
        try await waitUntilReady(port: port)
        let result = try await body(port, database)
        await group.triggerGracefulShutdown()
        _ = try? await serving.value
        return result
    }

    struct Request: Sendable {
        var path: String
        var headers: [String: String]
        var body: [UInt8]
    }

    /// `clients` gateways, each on its own connection and thread, sending the requests `make(client, n)`
    /// builds until `seconds` have passed; any answer but 2xx stops the run. Requests, bytes, seconds.
    static func drive(
        port: Int, clients: Int, seconds: Int, _ make: @escaping @Sendable (_ client: Int, _ sequence: Int) throws -> Request
    ) async throws -> (requests: Int, bytes: Int, elapsed: Double) {
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        let start = Date()
        let (requests, bytes) = try await withThrowingTaskGroup(of: (Int, Int).self) { tasks in
            for client in 0..<clients {
                tasks.addTask {
                    try await onThread {
                        let http = try LoopbackHTTPClient(port: port)
                        var sent = 0, bytes = 0
                        // At least one request each, however slow the machine: a rate needs something to count.
                        while sent == 0 || Date() < deadline {
                            let request = try make(client, sent)
                            let status = try http.send("POST", request.path, headers: request.headers, body: request.body)
                            guard (200...299).contains(status) else { throw BenchmarkError("\(request.path) answered \(status)") }
                            sent += 1
                            bytes += request.body.count
                        }
                        return (sent, bytes)
                    }
                }
            }
            return try await tasks.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        return (requests, bytes, Date().timeIntervalSince(start))
    }

    /// A throwaway cluster for the duration of `body`, stopped even when `body` fails.
    static func withCluster<T: Sendable>(
        logger: Logger, maxConnections: Int = 100, _ body: (EmbeddedPostgres) async throws -> T
    ) async throws -> T {
        let directory = try EmbeddedPostgres.makeTemporaryDirectory(prefix: "madoguchi-bench")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var settings = ["max_connections": String(maxConnections)]
        // MADOGUCHI_BENCH_STATEMENTS=1: load pg_stat_statements, so a benchmark can say where the database's time went;
        // =nested also counts the statements run inside triggers and functions, and the functions themselves.
        if tracksStatements { settings["shared_preload_libraries"] = "pg_stat_statements" }
        if tracksNestedStatements { settings["pg_stat_statements.track"] = "all"; settings["track_functions"] = "pl" }
        // MADOGUCHI_BENCH_PG_SETTINGS="name=value,name=value": server settings to try, e.g. a planner setting.
        for pair in (ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_PG_SETTINGS"] ?? "").split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { settings[parts[0]] = parts[1] }
        }
        let cluster = try EmbeddedPostgres(directory: directory, settings: settings, logger: logger)
        _ = try await cluster.start()
        do {
            let result = try await body(cluster)
            try await cluster.stop()
            return result
        } catch {
            try? await cluster.stop()
            throw error
        }
    }

    /// pgbench inserting payloads of `averageBytes` into `inbound_payloads` with `clients` clients:
    /// the least any ingest must do.
    static func pgbenchStorePayload(channel: Channel, averageBytes: Int, clients: Int, seconds: Int, on cluster: EmbeddedPostgres) async throws -> Double {
        let script = "INSERT INTO inbound_payloads (channel, content_type, body) VALUES ('\(channel.rawValue)', 'application/octet-stream', convert_to(repeat('x', \(averageBytes)), 'UTF8'));\n"
        return try await pgbenchTPS(script: script, named: "store-payload", clients: clients, seconds: seconds, on: cluster)
    }

    /// Runs `script` through pgbench on the `bench` database with `clients` clients for `seconds`,
    /// prepared statements (unless `MADOGUCHI_BENCH_PGBENCH_MODE` says otherwise), and returns its
    /// transactions per second.
    static func pgbenchTPS(script: String, named name: String, clients: Int, seconds: Int, on cluster: EmbeddedPostgres) async throws -> Double {
        try await pgbenchTPS(scripts: [script], named: name, clients: clients, seconds: seconds, on: cluster)
    }

    /// The same with several scripts, each transaction running one of them chosen at random.
    static func pgbenchTPS(scripts: [String], named name: String, clients: Int, seconds: Int, on cluster: EmbeddedPostgres) async throws -> Double {
        try await pgbenchRun(scripts: scripts, named: name, clients: clients, seconds: seconds, on: cluster).tps
    }

    /// A pgbench run's rate and the machine's busy CPU per transaction over the same seconds.
    struct PgbenchRun {
        var tps: Double
        var cpuMillisecondsPerTransaction: Double?
    }

    static func pgbenchRun(scripts: [String], named name: String, clients: Int, seconds: Int, on cluster: EmbeddedPostgres) async throws -> PgbenchRun {
        var files: [String] = []
        for (index, script) in scripts.enumerated() {
            let scriptPath = cluster.directory + "/\(name)\(scripts.count == 1 ? "" : "-\(index)").sql"
            try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
            _ = chmod(scriptPath, 0o644)  // pgbench runs as the cluster's owner
            files += ["-f", scriptPath]
            // MADOGUCHI_BENCH_SCRIPTS=dir: keep a copy of every script, to read what was replayed.
            if let keep = ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_SCRIPTS"] {
                try? FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
                try? script.write(toFile: keep + "/" + (scriptPath as NSString).lastPathComponent, atomically: true, encoding: .utf8)
            }
        }
        // MADOGUCHI_BENCH_LATENCIES=1: pgbench's latency of every statement, printed to stderr.
        let latencies = ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_LATENCIES"] == "1"
        // A replay of many scripts prepares each of a script's statements the first time a client
        // runs it, which the service's pooled connections did long before they were measured: with
        // a hundred scripts that was most of a short run at 32 clients. Those runs get as long again
        // to warm up, and only the seconds after it count (pgbench's per-second progress). A thread
        // per client, so that one client's prepare (pgbench waits for it) holds no other.
        let warmUp = scripts.count > 1 ? seconds : 0
        // The CPU counted from the end of the warm-up, like the rate.
        let steadyCPU = Task { () -> MachineCPU in
            try? await Task.sleep(for: .seconds(warmUp))
            return MachineCPU.now()
        }
        let result = try await cluster.runner.run(cluster.program("pgbench"), [
            "-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", EmbeddedPostgres.superuser, "-n",
            "-c", String(clients), "-j", String(clients), "-T", String(warmUp + seconds),
            // MADOGUCHI_BENCH_PGBENCH_MODE=extended: parse and plan every statement, as unnamed statements do.
            "-M", ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_PGBENCH_MODE"] ?? "prepared",
        ] + (warmUp > 0 ? ["-P", "1"] : []) + (latencies ? ["-r"] : []) + files + ["bench"])
        if latencies { FileHandle.standardError.write(Data(result.output.utf8)) }
        guard result.status == 0,
            let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst("tps = ".count).prefix { $0 == "." || $0.isNumber })
        else {
            throw BenchmarkError("pgbench failed (exit \(result.status)):\n\(result.output)")
        }
        let steady = warmUp > 0 ? Self.progressTPS(result.output, after: warmUp) : []
        let rate = steady.isEmpty ? tps : steady.reduce(0, +) / Double(steady.count)
        let cpu = await steadyCPU.value.millisecondsPer(Int(rate * Double(seconds)))
        return PgbenchRun(tps: rate, cpuMillisecondsPerTransaction: cpu)
    }

    /// The tps of each of pgbench's `-P 1` progress lines (`progress: 7.0 s, 812.3 tps, …`) past `after` seconds.
    static func progressTPS(_ output: String, after: Int) -> [Double] {
        output.split(separator: "\n").compactMap { line -> Double? in
            guard line.hasPrefix("progress: ") else { return nil }
            let parts = line.dropFirst("progress: ".count).split(separator: " ")
            guard parts.count >= 3, let second = Double(parts[0]), second > Double(after), let tps = Double(parts[2]) else { return nil }
            return tps
        }
    }

    /// Polls `/health/ready` until the service answers 200 (at most five minutes: the service migrates
    /// a fresh cluster first, which on a two-core machine running the whole test suite beside it
    /// has taken more than a minute).
    /// The server's port once it listens; the service group's error if it stops before (five minutes at most).
    final class BoundPort: Sendable {
        private let port = Mutex<Int?>(nil)

        func set(_ value: Int?) { port.withLock { $0 = value } }

        func value(orFailureOf serving: Task<Void, any Error>) async throws -> Int {
            for _ in 0..<6000 {
                if let port = port.withLock({ $0 }) { return port }
                try await Task.sleep(for: .milliseconds(50))
            }
            serving.cancel()
            try await serving.value
            throw BenchmarkError("the service did not start listening within five minutes")
        }
    }

    static func waitUntilReady(port: Int) async throws {
        for _ in 0..<6000 {
            // The client blocks; on the cooperative pool (one thread a core) it could starve the very
            // service it waits for.
            let ready = try await onThread { (try? LoopbackHTTPClient(port: port).send("GET", "/health/ready")) == 200 }
            if ready { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchmarkError("the service did not become ready")
    }

    /// Blocking work on a thread of its own, off Swift's cooperative pool (which has only as many
    /// threads as cores, and would serialize the clients).
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    static var tracksStatements: Bool { ["1", "nested"].contains(ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_STATEMENTS"]) }
    static var tracksNestedStatements: Bool { ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_STATEMENTS"] == "nested" }

    /// With MADOGUCHI_BENCH_STATEMENTS set, forgets the statements so far: the next report covers one measurement.
    static func forgetStatements(_ database: Database, logger: Logger) async throws {
        guard tracksStatements else { return }
        try await database.withConnection { connection in
            try await connection.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", logger: logger)
            try await connection.query("SELECT pg_stat_statements_reset(), pg_stat_reset()", logger: logger)
        }
    }

    /// With MADOGUCHI_BENCH_STATEMENTS set, the statements that took the database's time, most first
    /// (nested ones marked `>`), and with =nested the trigger functions' own time.
    static func reportStatements(_ database: Database, logger: Logger, report: (String) -> Void) async throws {
        guard tracksStatements else { return }
        try await database.withConnection { connection in
            try await connection.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", logger: logger)
            let rows = try await connection.query("""
                SELECT calls, round(total_exec_time)::bigint, round(mean_exec_time::numeric, 3)::text, plans, round(total_plan_time)::bigint,
                       CASE WHEN toplevel THEN '' ELSE '> ' END || left(regexp_replace(query, '\\s+', ' ', 'g'), 110)
                FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC
                LIMIT \(ProcessInfo.processInfo.environment["MADOGUCHI_BENCH_STATEMENTS_LIMIT"].flatMap(Int.init) ?? 12)
                """, logger: logger)
            // Planning is counted only with pg_stat_statements.track_planning=on (MADOGUCHI_BENCH_PG_SETTINGS).
            report("   calls  total ms  mean ms    plans  plan ms  statement")
            for try await (calls, total, mean, plans, planned, query) in rows.decode((Int, Int, String, Int, Int, String).self) {
                report(String(format: "%8d  %8d  %7@  %7d  %7d  %@", calls, total, mean, plans, planned, query))
            }
            if tracksNestedStatements {
                let functions = try await connection.query("""
                    SELECT calls, round(total_time)::bigint, round(self_time)::bigint, funcname
                    FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 12
                    """, logger: logger)
                report("   calls  total ms   self ms  function")
                for try await (calls, total, ownTime, name) in functions.decode((Int, Int, Int, String).self) {
                    report(String(format: "%8d  %8d  %8d  %@", calls, total, ownTime, name))
                }
            }
            try await connection.query("SELECT pg_stat_statements_reset()", logger: logger)
        }
    }
}
