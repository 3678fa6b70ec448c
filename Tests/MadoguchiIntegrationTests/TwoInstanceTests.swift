import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// Two `madoguchi serve` processes on one database, behind nothing: what holds for one instance holds
/// across both, and one killed mid-load loses nothing it acknowledged.
@Suite("Two instances on one database", .timeLimit(.minutes(15)))
struct TwoInstanceTests {
    /// Posts `mail` to the instance on `port`: the status, or nil when no answer came (refused, reset).
    static func post(_ mail: String, key: String, port: Int) async -> HTTPResponse.Status? {
        let request = TestClient.Request("/v1/inbound/email", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "message/rfc822"],
                                         body: ByteBuffer(string: mail.replacingOccurrences(of: "\n", with: "\r\n")))
        return try? await TestClient.withClient(host: "127.0.0.1", port: port, configuration: TestApp.patient) { try await $0.execute(request).status }
    }

    @Test("the same mails posted to both are stored once; agents pulling through both never share a ticket; one killed mid-load loses nothing acknowledged")
    func twoInstances() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            var agents: [String] = []
            for _ in 0..<4 { agents.append(try await app.keySecret(.agent)) }
            let unlimited = ["MADOGUCHI_RATE_LIMIT_GATEWAY": "off", "MADOGUCHI_RATE_LIMIT_AGENT": "off"]
            let first = try await HostileClientTests.startServer(databaseURL: app.databaseURL, unlimited)
            let second = try await HostileClientTests.startServer(databaseURL: app.databaseURL, unlimited)
            let ports = [first.port, second.port]

            // 1. Every mail posted to both instances at once: one message, one ticket each.
            let mails = (0..<40).map { testMail(from: "Customer \($0) <c\($0)@example.jp>", subject: "二重送信 \($0)", id: "twice-\($0)@example.jp") }
            let statuses = await withTaskGroup(of: HTTPResponse.Status?.self) { group in
                for mail in mails { for port in ports { group.addTask { await Self.post(mail, key: gateway, port: port) } } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == .created || $0 == .ok }, "\(statuses)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE subject LIKE '二重送信 %'") == 40)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE subject LIKE '二重送信 %'") == 40)

            // 2. Four agents, two on each instance, pull the queue dry: each ticket to one agent.
            let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
                for (index, agent) in agents.enumerated() {
                    group.addTask {
                        try await TestClient.withClient(host: "127.0.0.1", port: ports[index % 2], configuration: TestApp.patient) { client in
                            var mine: [String] = []
                            while true {
                                let response = try await client.execute(.init("/v1/queue/next", method: .post, headers: [.authorization: "Bearer \(agent)"]))
                                if response.status == .noContent { return mine }
                                guard response.status == .ok, let body = response.body,
                                      let id = (try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])?["id"] as? String
                                else { throw EmbeddedPostgresError("queue/next: \(response.status)") }
                                mine.append(id)
                            }
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(claimed.count == 40 && Set(claimed).count == 40, "\(claimed.count) claims, \(Set(claimed).count) tickets")

            // 3. Mails spread over both while the first is killed (SIGKILL) part-way; a gateway then
            // sends what got no answer to the survivor. Each mail ends up stored exactly once.
            let acknowledged = Acknowledged()
            let killer = Task {
                // Part-way: after ten answers, or once every post has had its answer (then the
                // count below says so) — never a wait for answers that are not coming.
                while acknowledged.count < 10 && !acknowledged.allAnswered { try await Task.sleep(for: .milliseconds(20)) }
                _ = await first.stop(SIGKILL)
            }
            let later = (0..<40).map { testMail(from: "Later \($0) <l\($0)@example.jp>", subject: "停止中 \($0)", id: "killed-\($0)@example.jp") }
            let answered = await withTaskGroup(of: (Int, HTTPResponse.Status?).self) { group in
                for (index, mail) in later.enumerated() {
                    group.addTask {
                        let status = await Self.post(mail, key: gateway, port: ports[index % 2])
                        if status == .created || status == .ok { acknowledged.add() }
                        return (index, status)
                    }
                }
                return await group.reduce(into: [Int: HTTPResponse.Status?]()) { $0[$1.0] = $1.1 }
            }
            acknowledged.finish()
            try await killer.value
            #expect(acknowledged.count >= 10, "only \(acknowledged.count) of 40 mails were answered before the kill")
            var retried = 0
            for (index, status) in answered where status != .created && status != .ok {
                retried += 1
                // 201, or 200 for one the killed instance committed but never got to answer.
                let status = await Self.post(later[index], key: gateway, port: second.port)
                #expect(status == .created || status == .ok, "\(String(describing: status))")
            }
            print("two instances: \(40 - retried) of 40 mails acknowledged before and during the kill, \(retried) sent again to the survivor")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE subject LIKE '停止中 %'") == 40)
            #expect(try await app.count("SELECT count(DISTINCT provider_message_id) FROM messages WHERE subject LIKE '停止中 %'") == 40)
            #expect(await second.stop() == 0)
        }
    }
}

/// How many posts were acknowledged so far, read while they run.
final class Acknowledged: Sendable {
    private let value = Mutex((count: 0, allAnswered: false))
    var count: Int { value.withLock { $0.count } }
    var allAnswered: Bool { value.withLock { $0.allAnswered } }
    func add() { value.withLock { $0.count += 1 } }
    func finish() { value.withLock { $0.allAnswered = true } }
}
