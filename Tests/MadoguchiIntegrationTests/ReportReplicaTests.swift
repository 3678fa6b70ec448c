import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Reports from a read replica", .timeLimit(.minutes(15)))
struct ReportReplicaTests {
    @Test("with MADOGUCHI_REPORTS_DATABASE_URL, reports read a real streaming standby: paused replay holds them back, resumed they catch up")
    func reportsReadTheReplica() async throws {
        let primaryDirectory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-primary")
        let primary = try EmbeddedPostgres(directory: primaryDirectory, logger: TestCluster.logger)
        defer { TestCluster.stopNow(primary) }
        _ = try await primary.start()
        try await primary.createDatabase("madoguchi")
        let standbyDirectory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-standby")
        let standby = try EmbeddedPostgres(directory: standbyDirectory, logger: TestCluster.logger)
        defer { TestCluster.stopNow(standby) }
        try await standby.createStandby(of: primary)
        _ = try await standby.start()
        let inRecovery = try await standby.withAdminConnection { connection in
            try await connection.query("SELECT pg_is_in_recovery()", logger: TestCluster.logger).collect().first?.decode(Bool.self)
        }
        #expect(inRecovery == true, "the standby runs read-only, following the primary")

        func url(_ cluster: EmbeddedPostgres) -> String { "postgresql://postgres@/madoguchi?host=\(cluster.socketDirectory)&port=\(cluster.port)" }
        let port = try ServeCommandTests.freePort()
        let log = primaryDirectory + "/serve.log"
        let process = try ChildProcess.start(ServeCommandTests.binary, ["serve"], environment: [
            "DATABASE_URL": url(primary), "MADOGUCHI_REPORTS_DATABASE_URL": url(standby), "MADOGUCHI_PORT": String(port),
            "MADOGUCHI_OUTBOX_WORKER": "off", "MADOGUCHI_WEBHOOK_WORKER": "off",
        ], log: log)
        let server = ServeCommandTests.Server(pid: process.pid, port: port, log: log)
        _ = try await server.waitUntilReady()
        let gateway = try await ServeCommandTests.createKey("gateway", databaseURL: url(primary))
        let dashboard = try await ServeCommandTests.createKey("dashboard", databaseURL: url(primary))

        func post(_ number: Int) async throws {
            let mail = testMail(subject: "レプリカ \(number)", id: "replica-\(number)@example.jp").replacingOccurrences(of: "\n", with: "\r\n")
            let request = "POST /v1/inbound/email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(gateway)\r\nContent-Type: message/rfc822\r\n"
                + "Content-Length: \(mail.utf8.count)\r\nConnection: close\r\n\r\n" + mail
            let answer = try await RawHTTP.exchange(port: port, request: request, timeoutSeconds: 60)
            #expect(answer.hasPrefix("HTTP/1.1 201"), "\(answer)")
        }
        // New tickets today, as the report counts them, and the moment the report says its data reflects.
        func reportedWithAsOf() async throws -> (count: Int, asOf: Date?) {
            let today = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "Asia/Tokyo")!, formatOptions: [.withFullDate])
            let tomorrow = ISO8601DateFormatter.string(from: Date().addingTimeInterval(86_400), timeZone: TimeZone(identifier: "Asia/Tokyo")!, formatOptions: [.withFullDate])
            let request = "GET /v1/reports/volume?from=\(today)&to=\(tomorrow)&format=csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(dashboard)\r\nConnection: close\r\n\r\n"
            let answer = try await RawHTTP.exchange(port: port, request: request, timeoutSeconds: 60)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            let head = answer.components(separatedBy: "\r\n\r\n").first ?? ""
            let asOfText = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-data-as-of:") }
                .map { $0.dropFirst("x-data-as-of:".count).trimmingCharacters(in: .whitespaces) }
            let asOf = asOfText.flatMap { text in
                [ISO8601DateFormatter.Options.withInternetDateTime, [.withInternetDateTime, .withFractionalSeconds]].lazy.compactMap { options in
                    let formatter = ISO8601DateFormatter()
                    formatter.formatOptions = options
                    return formatter.date(from: text)
                }.first
            }
            #expect(asOf != nil, "X-Data-As-Of in \(head)")
            let body = answer.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            let lines = body.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            guard let header = lines.first(where: { $0.contains("new_tickets") }), let column = header.firstIndex(of: "new_tickets") else {
                Issue.record("no new_tickets column in \(answer)")
                return (-1, asOf)
            }
            return (lines.dropFirst().compactMap { $0.count > column ? Int($0[column]) : nil }.reduce(0, +), asOf)
        }
        func reported() async throws -> Int { try await reportedWithAsOf().count }

        for number in 1...3 { try await post(number) }
        #expect(try await ChildProcess.eventually(timeout: .seconds(60)) { try await reported() == 3 }, "the standby caught up")

        // Caught up, the data is as of the moment of reading.
        let caughtUp = try await reportedWithAsOf()
        #expect(caughtUp.asOf.map { abs($0.timeIntervalSinceNow) < 30 } == true, "as of now: \(String(describing: caughtUp.asOf))")

        // Replay paused: what the primary takes in from now on is not on the standby, nor in reports.
        try await standby.withAdminConnection { try await $0.query("SELECT pg_wal_replay_pause()", logger: TestCluster.logger) }
        let paused = Date()
        for number in 4...5 { try await post(number) }
        try await Task.sleep(for: .seconds(1))
        let behind = try await reportedWithAsOf()
        #expect(behind.count == 3, "reports read the standby, where replay is paused")
        // The standby has received the new mail but not applied it: the data is as of its last applied
        // commit, which came before the pause.
        #expect(behind.asOf.map { $0 <= paused } == true, "as of \(String(describing: behind.asOf)), paused at \(paused)")

        try await standby.withAdminConnection { try await $0.query("SELECT pg_wal_replay_resume()", logger: TestCluster.logger) }
        #expect(try await ChildProcess.eventually(timeout: .seconds(60)) { try await reported() == 5 }, "resumed, the standby and the reports catch up")
        #expect(try await reportedWithAsOf().asOf.map { $0 > paused } == true, "caught up again, as of after the pause")
        let json = try await RawHTTP.exchange(port: port, request: "GET /v1/reports/backlog?from=2026-11-01&to=2026-11-02 HTTP/1.1\r\nHost: x\r\n"
            + "Authorization: Bearer \(dashboard)\r\nConnection: close\r\n\r\n", timeoutSeconds: 60)
        #expect(json.hasPrefix("HTTP/1.1 200") && json.components(separatedBy: "\r\n\r\n")[0].lowercased().contains("\r\nx-data-as-of: 20"),
                "JSON reports say it too: \(json.prefix(400))")
        #expect(await server.stop() == 0)
    }
}
