import Foundation
import Testing
@testable import Madoguchi
@testable import MadoguchiBench

#if canImport(Glibc)
import Glibc
#endif

/// The `madoguchi` binary itself, as an operator runs it: no DATABASE_URL, an empty data directory.
/// `swift test` builds it next to the test bundle.
@Suite("madoguchi serve, end to end", .timeLimit(.minutes(15)))
struct ServeCommandTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("madoguchi").path
    }

    /// A key of `role` made by `madoguchi keys create` against `databaseURL`, as an operator makes one.
    static func createKey(_ role: String, databaseURL: String) async throws -> String {
        let made = try await ChildProcess.run([binary, "keys", "create", "--role", role, "--name", role, "--database-url", databaseURL])
        return try #require(made.output.split(separator: "\n").first { $0.hasPrefix("mdg_") }.map(String.init), "\(made.output)")
    }

    /// A port nobody listens on right now.
    static func freePort() throws -> Int { try LoopbackHTTPClient.freePort() }

    struct Server {
        let pid: pid_t
        let port: Int
        let log: String

        static func start(dataDirectory: String, port: Int) throws -> Server {
            let log = dataDirectory + "/serve-\(UUID().uuidString.prefix(8)).log"
            let process = try ChildProcess.start(ServeCommandTests.binary, ["serve"], environment: [
                "MADOGUCHI_DATA_DIR": dataDirectory, "MADOGUCHI_PORT": String(port), "MADOGUCHI_LOG_FORMAT": "json",
            ], removing: ["DATABASE_URL"], log: log)
            return Server(pid: process.pid, port: port, log: log)
        }

        /// A server started on a free port and ready, with how long it took. The port is free when
        /// picked, but other tests run alongside and may take it before the server binds: a start that
        /// failed only for that is made again on another port.
        static func startReady(dataDirectory: String) async throws -> (Server, Duration) {
            for attempt in 1... {
                let server = try Server.start(dataDirectory: dataDirectory, port: try ServeCommandTests.freePort())
                do {
                    return (server, try await server.waitUntilReady())
                } catch let error as EmbeddedPostgresError where attempt < 3 && "\(error)".contains("Address already in use") {
                    continue
                }
            }
            fatalError("unreachable")
        }

        /// Polls /health/ready until it answers 200; returns how long that took.
        func waitUntilReady(timeout: Duration = .seconds(60)) async throws -> Duration {
            let start = ContinuousClock.now
            while ContinuousClock.now - start < timeout {
                // Only once our server says it listens on the port: another test's server that took
                // the port first would answer /health/ready too, and every request after it.
                if let written = try? String(contentsOfFile: log, encoding: .utf8),
                    written.contains("Server started and listening on"), written.contains(":\(port)"),
                    let answer = try? await RawHTTP.exchange(port: port, request: "GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeoutSeconds: 2),
                    answer.hasPrefix("HTTP/1.1 200")
                {
                    return ContinuousClock.now - start
                }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    throw EmbeddedPostgresError("madoguchi serve exited (status \(status)):\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw EmbeddedPostgresError("not ready within \(timeout)")
        }

        /// Sends `signal` and returns the exit code once the process is gone.
        func stop(_ signal: Int32 = SIGTERM) async -> Int32 {
            kill(pid, signal)
            let status = await ChildProcess(pid: pid, log: log).exit()
            return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        }
    }

    static func postmasterRunning(_ dataDirectory: String) -> Bool {
        guard let contents = try? String(contentsOfFile: dataDirectory + "/pg/postmaster.pid", encoding: .utf8),
            let pid = pid_t(contents.split(separator: "\n").first ?? "")
        else { return false }
        return EmbeddedPostgres.processIsPostmaster(pid: pid, clusterDirectory: dataDirectory + "/pg")
    }

    @Test("from an empty directory to ready, a key and a call; SIGTERM stops it and its cluster; a restart reuses the cluster; a SIGKILLed server's cluster is adopted")
    func lifecycle() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "swift test builds the madoguchi binary beside the tests")
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-serve")
        defer {
            if let cluster = try? EmbeddedPostgres(directory: directory, logger: TestCluster.logger) { TestCluster.stopNow(cluster) }
        }

        // First start: initdb, start, migrate, listen.
        let (first, coldStart) = try await Server.startReady(dataDirectory: directory)
        #expect(coldStart < .seconds(60))

        // The first key, made beside the running server, works at once.
        let keys = try await ChildProcess.run(
            [Self.binary, "keys", "create", "--role", "admin", "--name", "e2e", "--data-dir", directory])
        #expect(keys.status == 0, "\(keys.output)")
        let key = try #require(keys.output.split(separator: "\n").first { $0.hasPrefix("mdg_") })
        let me = try await RawHTTP.exchange(port: first.port, request: "GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nConnection: close\r\n\r\n")
        #expect(me.hasPrefix("HTTP/1.1 200"), "\(me)")
        #expect(me.contains(#""role" : "admin""#) || me.contains(#""role":"admin""#))
        #expect(Self.postmasterRunning(directory), "keys create must not stop the server's cluster")

        // Graceful stop: exit 0, cluster stopped with it.
        #expect(await first.stop(SIGTERM) == 0)
        #expect(!Self.postmasterRunning(directory))

        // Second start reuses the cluster (and the key).
        let (second, _) = try await Server.startReady(dataDirectory: directory)
        let again = try await RawHTTP.exchange(port: second.port, request: "GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nConnection: close\r\n\r\n")
        #expect(again.hasPrefix("HTTP/1.1 200"))

        // Killed outright, the server leaves its postmaster behind; the next start adopts it and, owning
        // it now, stops it on the way out.
        #expect(await second.stop(SIGKILL) == 128 + SIGKILL)
        #expect(Self.postmasterRunning(directory))
        let (third, _) = try await Server.startReady(dataDirectory: directory)
        #expect(await third.stop(SIGTERM) == 0)
        #expect(!Self.postmasterRunning(directory))
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test("a server that refuses the database's migrations (one changed after it was applied) says why and exits, its cluster stopped")
    func refusedMigrationExits() async throws {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-serve")
        defer {
            if let cluster = try? EmbeddedPostgres(directory: directory, logger: TestCluster.logger) { TestCluster.stopNow(cluster) }
        }
        let (server, _) = try await Server.startReady(dataDirectory: directory)
        // It once hung here for good: its workers spun on a wait that cancellation no longer slowed.
        let psql = try await ChildProcess.run([
            "/usr/lib/postgresql/15/bin/psql", "-h", directory + "/run", "-U", "postgres", "-d", "madoguchi", "-Atc",
            "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = (SELECT max(version) FROM schema_migrations)",
        ])
        #expect(psql.status == 0, "\(psql.output)")
        #expect(await server.stop(SIGTERM) == 0)

        let refused = try Server.start(dataDirectory: directory, port: try Self.freePort())
        let deadline = ContinuousClock.now + .seconds(60)
        var status: Int32 = 0
        var exited = false
        while !exited, ContinuousClock.now < deadline {
            exited = waitpid(refused.pid, &status, WNOHANG) == refused.pid
            if !exited { try await Task.sleep(for: .milliseconds(100)) }
        }
        let log = (try? String(contentsOfFile: refused.log, encoding: .utf8)) ?? ""
        if !exited { _ = await refused.stop(SIGKILL) }
        #expect(exited, "a server that cannot migrate exits instead of hanging: \(log)")
        #expect(status != 0)
        #expect(log.contains("was changed after it was applied"), "\(log)")
        #expect(!Self.postmasterRunning(directory))
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension ServeCommandTests {
    @Test("madoguchi mailgate with a mistyped option or an unreadable key file exits 75, so the MTA keeps the mail queued (Postfix bounces on 64, 77, 78)")
    func mailgateSetupMistakes() async throws {
        let typo = try await ChildProcess.run([Self.binary, "mailgate", "--urll", "http://127.0.0.1:1/v1/inbound/email", "--key-file", "/nonexistent"])
        #expect(typo.status == 75, "\(typo.output)")
        let unreadable = try await ChildProcess.run([Self.binary, "mailgate", "--url", "http://127.0.0.1:1/v1/inbound/email", "--key-file", "/nonexistent"])
        #expect(unreadable.status == 75, "\(unreadable.output)")
        #expect(unreadable.output.contains("stays queued"))
        // Other commands keep ArgumentParser's usage error.
        #expect(try await ChildProcess.run([Self.binary, "keys", "--bogus"]).status == 64)
    }
}

extension ServeCommandTests {
    @Test("keys commands migrate a new database but never an existing one: a database behind this binary is refused until `migrate`")
    func keysNeverMigrateAnExistingDatabase() async throws {
        let (configuration, url) = try await TestCluster.makeNamedDatabase()
        let latest = try Migrator.bundled().latestVersion
        // As a database left by the previous release looks: everything but the newest migration.
        try await TestCluster.withDatabase(configuration) { database in
            try await database.withConnection { try await $0.query("DELETE FROM schema_migrations WHERE version = \(latest)", logger: TestCluster.logger) }
        }
        let listed = try await ChildProcess.run([Self.binary, "keys", "list", "--database-url", url])
        #expect(listed.status != 0, "\(listed.output)")
        #expect(listed.output.contains("run `madoguchi migrate` first"), "\(listed.output)")
        let stillBehind = try await TestCluster.withDatabase(configuration) { database in
            try await database.withConnection { connection in
                try await connection.query("SELECT count(*)::int FROM schema_migrations WHERE version = \(latest)", logger: TestCluster.logger).collect().first?.decode(Int.self)
            }
        }
        #expect(stillBehind == 0, "keys list migrated the database")
        let migrated = try await ChildProcess.run([Self.binary, "migrate", "--database-url", url])
        #expect(migrated.status == 0, "\(migrated.output)")
        let again = try await ChildProcess.run([Self.binary, "keys", "list", "--database-url", url])
        #expect(again.status == 0, "\(again.output)")
    }
}
