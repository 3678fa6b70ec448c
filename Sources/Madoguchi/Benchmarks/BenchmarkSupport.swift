import Foundation

/// What every benchmark shares: pgbench as the raw-PostgreSQL yardstick, and waiting for the service.
enum BenchmarkSupport {
    /// Runs `script` through pgbench on the `bench` database with `clients` clients for `seconds`,
    /// prepared statements, and returns its transactions per second.
    static func pgbenchTPS(script: String, named name: String, clients: Int, seconds: Int, on cluster: EmbeddedPostgres) async throws -> Double {
        let scriptPath = cluster.directory + "/\(name).sql"
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        _ = chmod(scriptPath, 0o644)  // pgbench runs as the cluster's owner
        let result = try await cluster.runner.run(cluster.program("pgbench"), [
            "-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", EmbeddedPostgres.superuser, "-n",
            "-c", String(clients), "-j", String(min(clients, 2)), "-T", String(seconds), "-M", "prepared", "-f", scriptPath, "bench",
        ])
        guard result.status == 0,
            let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst("tps = ".count).prefix { $0 == "." || $0.isNumber })
        else {
            throw BenchmarkError("pgbench failed (exit \(result.status)):\n\(result.output)")
        }
        return tps
    }

    /// Polls `/health/ready` until the service answers 200 (at most ten seconds).
    static func waitUntilReady(port: Int) async throws {
        for _ in 0..<200 {
            if let client = try? LoopbackHTTPClient(port: port), (try? client.send("GET", "/health/ready")) == 200 { return }
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
}
