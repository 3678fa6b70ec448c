import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import Madoguchi

/// Clients that do not behave: no key but a large body, a body that never ends, a client that hangs
/// up halfway. Each is answered (or dropped) without costing the service memory or a false alarm.
///
/// Each test talks to a `madoguchi serve` process of its own (on the test's database, so keys made
/// through `TestApp` work): what is tested are deadlines and connection handling, which in this
/// process share event loops and a cooperative pool with two hundred other tests' servers.
@Suite("Hostile clients are answered early and cheaply", .timeLimit(.minutes(15)))
struct HostileClientTests {
    /// A request head declaring a 900 KB body (under every path's limit) followed by a few bytes of
    /// it. An answer that arrives at all was given before the body was read: the rest never comes.
    static func head(_ path: String, extra: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(extra)Content-Length: 900000\r\n\r\n{\"events\":["
    }

    @Test("no key, a wrong key, or a webhook with no signature: answered before the body is read, nothing stored")
    func authenticationBeforeBody() async throws {
        try await TestApp.run { app in
            let server = try await Self.startServer(databaseURL: app.databaseURL, [:])
            let port = server.port
            let agent = try await app.keySecret(.agent)
            for path in ["/v1/inbound/webform", "/v1/inbound/chat", "/v1/inbound/sms", "/v1/inbound/email"] {
                let noKey = try await RawHTTP.exchange(port: port, request: Self.head(path), timeoutSeconds: 60)
                #expect(noKey.hasPrefix("HTTP/1.1 401"), "\(path): \(noKey)")
                let wrongKey = try await RawHTTP.exchange(port: port, request: Self.head(path, extra: "Authorization: Bearer mdg_nothing_valid\r\n"),
                                                    timeoutSeconds: 60)
                #expect(wrongKey.hasPrefix("HTTP/1.1 401"), "\(path): \(wrongKey)")
                // A valid key of the wrong role is refused from the headers as well.
                let wrongRole = try await RawHTTP.exchange(port: port, request: Self.head(path, extra: "Authorization: Bearer \(agent)\r\n"),
                                                     timeoutSeconds: 60)
                #expect(wrongRole.hasPrefix("HTTP/1.1 403"), "\(path): \(wrongRole)")
            }
            let unsignedLine = try await RawHTTP.exchange(port: port, request: Self.head("/v1/inbound/chat/line"), timeoutSeconds: 60)
            #expect(unsignedLine.hasPrefix("HTTP/1.1 403") && unsignedLine.contains("X-Line-Signature is missing"), "\(unsignedLine)")
            // Twilio has no auth token configured here, so no request of its can be verified.
            let twilio = try await RawHTTP.exchange(port: port, request: Self.head("/v1/inbound/sms/twilio", extra: "X-Twilio-Signature: abc\r\n"),
                                                  timeoutSeconds: 60)
            #expect(twilio.hasPrefix("HTTP/1.1 403") && twilio.contains("MADOGUCHI_TWILIO_AUTH_TOKENS"), "\(twilio)")
            let vonage = try await RawHTTP.exchange(port: port, request: Self.head("/v1/inbound/sms/vonage/status"), timeoutSeconds: 60)
            #expect(vonage.hasPrefix("HTTP/1.1 403") && vonage.contains("MADOGUCHI_VONAGE_SIGNATURE_SECRETS"), "\(vonage)")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
            #expect(await server.stop() == 0)
        }
    }
}

extension HostileClientTests {
    @Test("a client hanging up mid-body is counted as a client close (499), never as a 500")
    func hangupMidBody() async throws {
        // Two paths that read the body without a key; the email post is 401 from its headers.
        let server = try await Self.startServer(["MADOGUCHI_VONAGE_ALLOW_UNSIGNED": "true"])
        for path in ["/v1/inbound/chat/line", "/v1/inbound/sms/vonage", "/v1/inbound/email"] {
            let descriptor = try RawHTTP.connectSending(port: server.port, request: """
                POST \(path) HTTP/1.1\r
                Host: localhost\r
                X-Line-Signature: c2ln\r
                Content-Type: application/json\r
                Content-Length: 100\r
                \r
                abc
                """, timeoutSeconds: 5)
            try await Task.sleep(for: .milliseconds(200))
            close(descriptor)
        }
        var counted: [Substring] = []
        let seen = try await ChildProcess.eventually(timeout: .seconds(60)) {
            let metrics = try await RawHTTP.exchange(port: server.port, request: "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                                     timeoutSeconds: 30)
            counted = metrics.split(separator: "\n").filter { $0.hasPrefix("madoguchi_http_requests_total{") }
            return counted.filter { $0.contains(#"status="499""#) }.count >= 2
        }
        #expect(seen, "\(counted)")
        #expect(!counted.contains { $0.contains(#"status="500""#) }, "\(counted)")
        #expect(await server.stop() == 0)
        let written = (try? String(contentsOfFile: server.log, encoding: .utf8)) ?? ""
        #expect(written.contains("client closed the connection mid-request"))
    }
}

extension HostileClientTests {
    /// `madoguchi serve` on `databaseURL` (else a fresh test database) with `environment`, ready. LINE is configured, so a
    /// request with a signature header has its body read.
    static func startServer(databaseURL: String? = nil, _ environment: [String: String]) async throws -> ServeCommandTests.Server {
        let url = if let databaseURL { databaseURL } else { try await TestCluster.makeNamedDatabase().url }
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-hostile")
        // A free port can be taken by another test's process between finding it and binding it (it
        // happened in CI): then the server exits saying so, and it starts again on another port.
        for attempt in 1... {
            let port = try ServeCommandTests.freePort()
            let log = directory + "/serve-\(attempt).log"
            let process = try ChildProcess.start(ServeCommandTests.binary, ["serve"], environment: [
                "DATABASE_URL": url, "MADOGUCHI_PORT": String(port), "MADOGUCHI_DATA_DIR": directory,
                "MADOGUCHI_LINE_CHANNEL_SECRETS": "line-secret", "MADOGUCHI_OUTBOX_WORKER": "off", "MADOGUCHI_WEBHOOK_WORKER": "off",
                // At the peak of a full run a first connection to the shared cluster took longer than
                // the default 5 s, and the server gave up at startup.
                "MADOGUCHI_DB_WAIT_SECONDS": "30",
            ].merging(environment) { _, new in new }, log: log)
            let server = ServeCommandTests.Server(pid: process.pid, port: port, log: log)
            do {
                _ = try await server.waitUntilReady()
                return server
            } catch {
                _ = await server.stop(SIGKILL)
                let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                guard attempt < 3, said.contains("Address already in use") else { throw error }
            }
        }
        fatalError("unreachable")
    }

    @Test("slow headers, a body that trickles forever and an idle connection are closed; other clients go on")
    func slowClients() async throws {
        // A server process of its own: the deadlines are timers on its event loops, which in this
        // process are shared with two hundred other tests' servers, clusters and sinks.
        let server = try await Self.startServer(["MADOGUCHI_HTTP_IDLE_SECONDS": "2", "MADOGUCHI_HTTP_REQUEST_SECONDS": "4"])
        let port = server.port

        async let silent = RawHTTP.closedByServer(port: port, sending: [], every: .zero)
        // Slowloris: a header line a byte at a time; the head never completes.
        async let slowHead = RawHTTP.closedByServer(port: port, sending: Array("POST /v1/inbound/chat/line HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8),
                                                   every: .milliseconds(500))
        // A complete head (signed, so the body is read), then a byte every half second: never idle for
        // 2 s, but past the 4 s deadline.
        let head = "POST /v1/inbound/chat/line HTTP/1.1\r\nHost: x\r\nX-Line-Signature: c2ln\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        async let trickle = RawHTTP.closedByServer(port: port, first: Array(head.utf8), sending: Array(repeating: UInt8(ascii: " "), count: 1000),
                                                   every: .milliseconds(500))
        for _ in 0..<5 {
            let live = try await RawHTTP.exchange(port: port, request: "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeoutSeconds: 60)
            #expect(live.hasPrefix("HTTP/1.1 200"), "\(live)")
            try await Task.sleep(for: .milliseconds(500))
        }
        let (silentEnding, slowHeadEnding, trickleEnding) = try await (silent, slowHead, trickle)
        #expect(silentEnding == .closed, "an idle connection")
        #expect(slowHeadEnding.isClosed, "a head sent a byte at a time: \(slowHeadEnding)")
        #expect(trickleEnding.isClosed, "a trickling body: \(trickleEnding)")
        #expect(await server.stop() == 0)
        let written = (try? String(contentsOfFile: server.log, encoding: .utf8)) ?? ""
        #expect(written.contains("did not arrive in full in time"), "the deadline is logged")
    }

    @Test("a request the HTTP parser cannot read (a query not percent-encoded) is answered with a problem document and a request id")
    func unreadableRequest() async throws {
        let server = try await Self.startServer([:])
        let answer = try await RawHTTP.exchange(port: server.port, request: "GET /v1/customers?phone=０３（１２３４）５６７８ HTTP/1.1\r\nHost: x\r\n\r\n",
                                                timeoutSeconds: 30)
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(300))")
        #expect(answer.lowercased().contains("content-type: application/problem+json"), "\(answer.prefix(300))")
        #expect(answer.lowercased().contains("x-request-id: "), "\(answer.prefix(300))")
        #expect(answer.contains("percent-encode"), "\(answer.suffix(400))")
        // The server goes on.
        let live = try await RawHTTP.exchange(port: server.port, request: "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeoutSeconds: 30)
        #expect(live.hasPrefix("HTTP/1.1 200"), "\(live)")
        #expect(await server.stop() == 0)
    }

    @Test("a body without a key has the keyless deadline, much shorter than a keyed request's")
    func keylessDeadline() async throws {
        let server = try await Self.startServer([
            "MADOGUCHI_HTTP_IDLE_SECONDS": "30", "MADOGUCHI_HTTP_REQUEST_SECONDS": "600", "MADOGUCHI_HTTP_KEYLESS_REQUEST_SECONDS": "2"])
        // A provider webhook's head (no key: its signature is checked once the body is in), then a
        // byte every half second: never idle, far inside the keyed deadline.
        let head = "POST /v1/inbound/chat/line HTTP/1.1\r\nHost: x\r\nX-Line-Signature: c2ln\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        let ending = try await RawHTTP.closedByServer(port: server.port, first: Array(head.utf8),
                                                      sending: Array(repeating: UInt8(ascii: " "), count: 1000), every: .milliseconds(500))
        #expect(ending.isClosed, "a keyless trickle: \(ending)")
        // A provider webhook with an Authorization header is no keyed request: the signature lets it in.
        let dressed = "POST /v1/inbound/chat/line HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nX-Line-Signature: c2ln\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        let dressedEnding = try await RawHTTP.closedByServer(port: server.port, first: Array(dressed.utf8),
                                                             sending: Array(repeating: UInt8(ascii: " "), count: 1000), every: .milliseconds(500))
        #expect(dressedEnding.isClosed, "a provider webhook trickling with a header: \(dressedEnding)")
        #expect(await server.stop() == 0)
        let written = (try? String(contentsOfFile: server.log, encoding: .utf8)) ?? ""
        #expect(written.contains("a request without a key did not arrive in full in time"), "the deadline is logged")
    }

    @Test("request bodies beyond the in-flight budget are 503 with Retry-After, before they are read; bodies announced but not sent hold nothing")
    func bodyBudget() async throws {
        try await TestApp.run { app in
            let server = try await Self.startServer(databaseURL: app.databaseURL, [
                "MADOGUCHI_HTTP_BODY_BUDGET_BYTES": "600000", "MADOGUCHI_MAX_BODY_BYTES": "500000", "MADOGUCHI_MAX_EMAIL_BYTES": "500000"])
            let port = server.port
            let admin = try await app.keySecret(.admin)
            func head(_ length: Int) -> String {
                "POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(admin)\r\nContent-Type: application/json\r\nContent-Length: \(length)\r\n\r\n{"
            }
            // Bodies announced and trickled (a byte so far) hold only what arrived: a request that
            // fits beside them is read and judged on its content.
            let tricklers = try (0..<3).map { _ in try RawHTTP.connectSending(port: port, request: head(500_000), timeoutSeconds: 5) }
            try await Task.sleep(for: .milliseconds(300))
            let judged = try await RawHTTP.exchange(port: port, request: head(200_000) + String(repeating: " ", count: 199_999), timeoutSeconds: 60)
            #expect(judged.hasPrefix("HTTP/1.1 400"), "\(judged.prefix(300))")
            // One that has sent 450 KB of its 500 holds them while the rest is awaited.
            let holder = try RawHTTP.connectSending(port: port, request: head(500_000) + String(repeating: " ", count: 450_000), timeoutSeconds: 5)
            try await Task.sleep(for: .seconds(1))
            let refused = try await RawHTTP.exchange(port: port, request: head(200_000), timeoutSeconds: 60)
            #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
            #expect(refused.lowercased().contains("retry-after: 1"), "\(refused)")
            #expect(refused.contains("server-busy"), "\(refused)")
            // What still fits is read and judged on its content.
            let body = #"{"name":"fits","role":"dashboard"}"#
            let fits = try await RawHTTP.exchange(port: port, request: """
                POST /v1/api-keys HTTP/1.1\r
                Host: x\r
                Authorization: Bearer \(admin)\r
                Content-Type: application/json\r
                Content-Length: \(body.utf8.count)\r
                \r
                \(body)
                """, timeoutSeconds: 60)
            #expect(fits.hasPrefix("HTTP/1.1 201"), "\(fits)")
            close(holder)
            tricklers.forEach { close($0) }
            #expect(await server.stop() == 0)
        }
    }
}

extension HostileClientTests {
    @Test("a client that leaves a large response unread is dropped after the write timeout")
    func unreadResponse() async throws {
        try await TestApp.run { app in
            let server = try await Self.startServer(databaseURL: app.databaseURL, ["MADOGUCHI_HTTP_WRITE_SECONDS": "2"])
            let gateway = try await app.keySecret(.gateway)
            let lines = String(repeating: String(repeating: "x", count: 76) + "\n", count: 80_000)
            let posted = try await app.postMail(gateway, testMail(subject: "大きな添付", id: "big@example.jp", body: lines))
            let inboundID = try #require(try posted.json["inbound_id"] as? String, "\(posted.text)")
            let port = server.port
            let request = "GET /v1/inbound/\(inboundID) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(gateway)\r\nAccept: message/rfc822\r\n\r\n"
            let received = try await RawHTTP.readAfterPause(port: port, request: request, pause: .seconds(6))
            #expect(received.closed, "the connection was not closed")
            #expect(received.bytes < 6_000_000, "the whole \(received.bytes)-byte response arrived: nothing dropped the unread connection")
            #expect(await server.stop() == 0)
        }
    }
}

enum ServerEnding: Equatable {
    case closed
    case closedAfterAnswer(String)
    case stillOpen(answered: String)

    var isClosed: Bool {
        if case .stillOpen = self { return false }
        return true
    }
}

extension RawHTTP {
    /// Sends `request` on a socket with a small receive buffer, waits for the response to start, reads
    /// nothing more for `pause`, then reads to the end: how many bytes arrived, and whether the server
    /// closed the connection.
    static func readAfterPause(port: Int, request: String, pause: Duration) async throws -> (bytes: Int, closed: Bool) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    let descriptor = try connectSending(port: port, request: request, timeoutSeconds: 60, receiveBuffer: 4096)
                    defer { close(descriptor) }
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    var total = max(0, recv(descriptor, &buffer, 1024, 0))
                    Thread.sleep(forTimeInterval: pause.seconds)
                    while true {
                        let count = recv(descriptor, &buffer, buffer.count, 0)
                        if count > 0 { total += count; continue }
                        return (total, count == 0 || errno == ECONNRESET)
                    }
                })
            }.start()
        }
    }

    /// How the server ends a connection on which `first`, then `sending` a byte at a time every
    /// `interval`, is written (nothing more once the bytes run out): closed, perhaps after an answer
    /// (whose start is kept), or still open after 30 s. A blocking socket on a thread of its own.
    static func closedByServer(port: Int, first: [UInt8] = [], sending: [UInt8], every interval: Duration) async throws -> ServerEnding {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    let descriptor = try connectSending(port: port, request: String(decoding: first, as: UTF8.self), timeoutSeconds: 1)
                    defer { close(descriptor) }
                    let start = Date()
                    var remaining = sending[...]
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    var answer: [UInt8] = []
                    let ending = { answer.isEmpty ? ServerEnding.closed : .closedAfterAnswer(String(decoding: answer.prefix(200), as: UTF8.self)) }
                    while Date().timeIntervalSince(start) < 30 {
                        if answer.isEmpty, let byte = remaining.popFirst() {
                            guard [byte].withUnsafeBytes({ send(descriptor, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }) == 1 else { return ending() }
                            Thread.sleep(forTimeInterval: interval.seconds)
                        }
                        // Non-blocking look: 0 is the server's close.
                        let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                        if count == 0 || (count < 0 && errno == ECONNRESET) { return ending() }
                        if count > 0 { answer += buffer[0..<count] }
                        if remaining.isEmpty || !answer.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
                    }
                    return .stillOpen(answered: String(decoding: answer.prefix(200), as: UTF8.self))
                })
            }.start()
        }
    }
}

extension HostileClientTests {
    @Test("PostgreSQL stopped under a running server: ready and every request answer 503 with Retry-After, never hang or 500; back, it serves again")
    func databaseOutage() async throws {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-outage")
        let cluster = try EmbeddedPostgres(directory: directory, logger: TestCluster.logger)
        defer { TestCluster.stopNow(cluster) }
        let port = try ServeCommandTests.freePort()
        let log = directory + "/serve.log"
        let process = try ChildProcess.start(ServeCommandTests.binary, ["serve"], environment: [
            "MADOGUCHI_DATA_DIR": directory, "MADOGUCHI_PORT": String(port), "MADOGUCHI_DB_WAIT_SECONDS": "2",
            "MADOGUCHI_OUTBOX_WORKER": "off", "MADOGUCHI_WEBHOOK_WORKER": "off",
        ], removing: ["DATABASE_URL"], log: log)
        let server = ServeCommandTests.Server(pid: process.pid, port: port, log: log)
        _ = try await server.waitUntilReady()
        let keys = try await ChildProcess.run([ServeCommandTests.binary, "keys", "create", "--role", "gateway", "--name", "g", "--data-dir", directory])
        let key = try #require(keys.output.split(separator: "\n").first { $0.hasPrefix("mdg_") }, "\(keys.output)")
        let me = "GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nConnection: close\r\n\r\n"
        let ready = "GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let mail = Array(testMail(subject: "停止中", id: "outage@example.jp").replacingOccurrences(of: "\n", with: "\r\n").utf8)
        let post = "POST /v1/inbound/email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Type: message/rfc822\r\nContent-Length: \(mail.count)\r\nConnection: close\r\n\r\n"
            + String(decoding: mail, as: UTF8.self)
        #expect(try await RawHTTP.exchange(port: port, request: me, timeoutSeconds: 60).hasPrefix("HTTP/1.1 200"))

        try await cluster.stop()
        let stopped = ContinuousClock.now
        for (name, request) in [("ready", ready), ("me", me), ("post", post), ("me again", me)] {
            let start = ContinuousClock.now
            let answer = try await RawHTTP.exchange(port: port, request: request, timeoutSeconds: 60)
            let took = ContinuousClock.now - start
            #expect(answer.hasPrefix("HTTP/1.1 503"), "\(name) after \(took): \(answer)")
            #expect(took < .seconds(20), "\(name) took \(took): the answer must come within the configured wait, not hang")
            if name != "ready" {
                #expect(answer.lowercased().contains("retry-after: 5") && answer.contains("database-unavailable"), "\(name): \(answer)")
            }
        }

        // A long outage: by now PostgresNIO's pool waits ~10 s between connection attempts and its
        // breaker fails every lease at once. Requests go on being answered 503 meanwhile.
        while ContinuousClock.now - stopped < .seconds(40) {
            let answer = try await RawHTTP.exchange(port: port, request: me, timeoutSeconds: 60)
            #expect(answer.hasPrefix("HTTP/1.1 503"), "\(answer)")
            try await Task.sleep(for: .seconds(1))
        }

        do {
            _ = try await cluster.start()
        } catch {
            let written = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            Issue.record("PostgreSQL did not start again: \(error)\nthe server's log ends:\n\(written.split(separator: "\n").suffix(30).joined(separator: "\n"))")
            throw error
        }
        let recovery = ContinuousClock.now
        let back = try await ChildProcess.eventually(timeout: .seconds(120)) {
            try await RawHTTP.exchange(port: port, request: me, timeoutSeconds: 30).hasPrefix("HTTP/1.1 200")
        }
        let took = ContinuousClock.now - recovery
        #expect(back, "the server did not serve again within 120 s of PostgreSQL's return")
        print("database outage: serving again \(took) after PostgreSQL returned")
        // Not the stale pool's next attempt, which could be 10 s away: a fresh pool, within seconds.
        #expect(took < .seconds(10), "serving again took \(took)")
        let replaced = (try? String(contentsOfFile: log, encoding: .utf8))?.contains("replaced the connection pool") ?? false
        #expect(replaced || took < .seconds(2), "the stale pool was not replaced, and serving again took \(took)")
        let posted = try await RawHTTP.exchange(port: port, request: post, timeoutSeconds: 60)
        #expect(posted.hasPrefix("HTTP/1.1 201"), "\(posted)")
        #expect(await server.stop() == 0)
        let written = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(!written.contains(#""status":"500""#) && !written.contains("status=500"), "no request was answered 500")
    }
}
