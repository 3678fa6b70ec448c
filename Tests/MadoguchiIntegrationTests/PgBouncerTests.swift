import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

/// The service behind a real PgBouncer in session mode, with PgBouncer's default settings: the
/// RUNBOOK says the service runs behind one, so nothing may depend on what it refuses.
@Suite("Behind PgBouncer", .timeLimit(.minutes(15)))
struct PgBouncerTests {
    @Test("serve migrates an empty database, takes mail and answers reports through PgBouncer; JIT is off for its sessions")
    func serveThroughPgBouncer() async throws {
        // PSQLError's description hides the server's words; a failure here (once, in a loaded full
        // run) must say which statement failed and why.
        do {
            try await throughPgBouncer()
        } catch let error as PSQLError {
            Issue.record("\(String(reflecting: error))")
        }
    }

    private func throughPgBouncer() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: PgBouncer.executable), ".ci/run installs pgbouncer")
        let cluster = try await TestCluster.cluster
        let bouncer = try await PgBouncer.start(inFrontOf: cluster)
        defer { bouncer.killNow() }
        let database = try #require(try await TestCluster.makeEmptyDatabase().database)
        let url = bouncer.url(database: database)

        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-pgbouncer")
        // Before 0054, every connection sent the startup parameter jit=off, and PgBouncer closed it:
        // "unsupported startup parameter: jit". The port is free when picked, but another test may
        // take it before the server binds (CI failed so once): then another try on another port.
        var started: ServeCommandTests.Server?
        for attempt in 1...3 where started == nil {
            let port = try ServeCommandTests.freePort()
            let log = directory + "/serve-\(attempt).log"
            let process = try ChildProcess.start(ServeCommandTests.binary, ["serve"], environment: [
                "DATABASE_URL": url, "MADOGUCHI_PORT": String(port), "MADOGUCHI_OUTBOX_WORKER": "off", "MADOGUCHI_WEBHOOK_WORKER": "off",
            ], log: log)
            let candidate = ServeCommandTests.Server(pid: process.pid, port: port, log: log)
            do {
                _ = try await candidate.waitUntilReady()
                started = candidate
            } catch let error as EmbeddedPostgresError where attempt < 3 && "\(error)".contains("Address already in use") {
                continue
            }
        }
        let server = try #require(started)
        let port = server.port
        defer { kill(server.pid, SIGKILL) }

        let gateway = try await ServeCommandTests.createKey("gateway", databaseURL: url)
        let dashboard = try await ServeCommandTests.createKey("dashboard", databaseURL: url)
        let mail = testMail(subject: "PgBouncer 経由", id: "bouncer-1@example.jp").replacingOccurrences(of: "\n", with: "\r\n")
        let posted = try await RawHTTP.exchange(port: port, request: "POST /v1/inbound/email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(gateway)\r\n"
            + "Content-Type: message/rfc822\r\nContent-Length: \(mail.utf8.count)\r\nConnection: close\r\n\r\n" + mail, timeoutSeconds: 60)
        #expect(posted.hasPrefix("HTTP/1.1 201"), "\(posted)")

        let from = ISO8601DateFormatter.string(from: Date().addingTimeInterval(-86_400), timeZone: TimeZone(identifier: "Asia/Tokyo")!, formatOptions: [.withFullDate])
        let to = ISO8601DateFormatter.string(from: Date().addingTimeInterval(86_400), timeZone: TimeZone(identifier: "Asia/Tokyo")!, formatOptions: [.withFullDate])
        for format in ["json", "csv"] {
            let answer = try await RawHTTP.exchange(port: port, request: "GET /v1/reports/volume?from=\(from)&to=\(to)&format=\(format) HTTP/1.1\r\n"
                + "Host: x\r\nAuthorization: Bearer \(dashboard)\r\nConnection: close\r\n\r\n", timeoutSeconds: 60)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(format): \(answer)")
        }

        // A session opened now, straight to PostgreSQL, as the service's role in its database.
        var direct = cluster.clientConfiguration(database: database)
        direct.options.maximumConnections = 1
        let jit = try await TestCluster.withDatabase(direct) { database in
            try await database.withConnection { connection in
                try await connection.query("SHOW jit", logger: TestCluster.logger).collect().first?.decode(String.self)
            }
        }
        #expect(jit == "off")
        #expect(await server.stop() == 0)
        // PgBouncer itself, not only the runuser that started it (SIGKILL to that left it running).
        #expect(await bouncer.stop(), "PgBouncer stopped")
    }
}
