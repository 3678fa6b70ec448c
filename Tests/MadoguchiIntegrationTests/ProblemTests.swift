import Foundation
import HTTPTypes
import NIOCore
import HummingbirdTesting
import Testing
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

@Suite("Every error is RFC 9457 problem+json with the right status", .timeLimit(.minutes(15)))
struct ProblemTests {
    @Test("unknown route 404, wrong method 405 with Allow")
    func routing() async throws {
        try await TestApp.run { app in
            try expectProblem(try await app.request(.get, "/v1/nothing-here"), .notFound, "not-found")
            let wrongMethod = try await app.request(.put, "/v1/tickets/00000000-0000-4000-8000-000000000000")
            try expectProblem(wrongMethod, .methodNotAllowed, "method-not-allowed")
            #expect(wrongMethod.headers[.allow] == "GET, HEAD, PATCH")
            #expect(try await app.request(.post, "/v1/tickets").headers[.allow] == "GET, HEAD")
            #expect(try await app.request(.put, "/v1/api-keys").headers[.allow] == "GET, HEAD, POST")
            // The email endpoint is a literal path beside /v1/inbound/{inbound_id}: only POST is allowed there.
            let emailByGet = try await app.request(.get, "/v1/inbound/email", key: try await app.keySecret(.gateway))
            try expectProblem(emailByGet, .methodNotAllowed, "method-not-allowed")
            #expect(emailByGet.headers[.allow] == "POST")
        }
    }

    @Test("a JSON body far broader than any request (15,000 members) is refused before it is parsed, nothing stored; a long one is not")
    func tooBroad() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let fields = (0..<15_000).map { #""f\#($0)":"v""# }.joined(separator: ",")
            let broad = try await app.request(.post, "/v1/inbound/webform", key: gateway, json: """
                {"form_id":"contact","submission_id":"broad-1","email":"a@example.jp","body":"x","fields":{\(fields)}}
                """)
            try expectProblem(broad, .badRequest, "malformed-body")
            #expect(broad.text.contains("too broad"), "\(broad.text)")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
            // A long field (a file's base64 is one string) is no broad body.
            let long = try await app.request(.post, "/v1/inbound/webform", key: gateway, json: """
                {"form_id":"contact","submission_id":"long-1","email":"a@example.jp","body":"\(String(repeating: "長い文章、", count: 20_000))"}
                """)
            #expect(long.status != .badRequest, "\(long.text.prefix(300))")
        }
    }

    @Test("malformed JSON, a field of the wrong type, a missing field and an unknown field are 400 naming the field")
    func malformedBodies() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            try expectProblem(try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"#), .badRequest, "malformed-body")
            let wrongType = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"x","role":5}"#)
            try expectProblem(wrongType, .badRequest, "malformed-body")
            #expect((try wrongType.json["errors"] as? [[String: String]])?.first?["pointer"] == "/role")
            let wrongValue = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"x","role":"superuser"}"#)
            try expectProblem(wrongValue, .badRequest, "malformed-body")
            // What it may be instead, from the contract (the decoder names only its own type).
            let said = (try wrongValue.json["errors"] as? [[String: String]])?.first
            #expect(said?["pointer"] == "/role")
            #expect(said?["message"]?.hasPrefix("'superuser' is not one of ") == true && said?["message"]?.contains("agent") == true, "\(wrongValue.text)")
            let missing = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"role":"agent"}"#)
            try expectProblem(missing, .badRequest, "malformed-body")
            #expect((try missing.json["errors"] as? [[String: String]])?.first?["pointer"] == "/name")
            let unknown = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"x","role":"agent","admin":true}"#)
            try expectProblem(unknown, .badRequest, "malformed-body")
            let invalidUTF8 = try await app.client.execute(
                uri: "/v1/api-keys", method: .post,
                headers: [.authorization: "Bearer \(admin)", .contentType: "application/json"],
                body: ByteBuffer(bytes: Array(#"{"name":""#.utf8) + [0xFF, 0xFE] + Array(#"","role":"admin"}"#.utf8)))
            try expectProblem(invalidUTF8, .badRequest, "malformed-body")
            let blankName = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"   ","role":"admin"}"#)
            try expectProblem(blankName, .unprocessableContent, "validation-failed")
            // None of the refused requests wrote a key.
            let keys = try await app.request(.get, "/v1/api-keys", key: admin)
            #expect((try keys.json["items"] as? [Any])?.count == 1)
        }
    }

    @Test("wrong media type 415; bad UUID, bad enum, bad limit and foreign cursor 400 naming the parameter")
    func badParameters() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let agent = try await app.keySecret(.agent)
            try expectProblem(
                try await app.request(.post, "/v1/api-keys", key: admin, headers: [.contentType: "text/plain"], json: "name=x"),
                .unsupportedMediaType, "unsupported-media-type")
            let badUUID = try await app.request(.get, "/v1/tickets/not-a-uuid", key: agent)
            try expectProblem(badUUID, .badRequest, "invalid-parameter")
            #expect((try badUUID.json["errors"] as? [[String: String]])?.first?["pointer"] == "ticket_id")
            // With a body, the path is still what is wrong: it is read first.
            for (path, json, name) in [("/v1/replies/null/send", "{}", "reply_id"), ("/v1/tickets/null/notes", #"{"body":"x"}"#, "ticket_id"),
                                       ("/v1/replies/null", "{}", "reply_id")] {
                let withBody = try await app.request(path.hasSuffix("null") ? .patch : .post, path, key: agent, json: json)
                try expectProblem(withBody, .badRequest, "invalid-parameter")
                #expect((try withBody.json["errors"] as? [[String: String]])?.first?["pointer"] == name, "\(path): \(withBody.text)")
            }
            // A body's own bad value is still the body's.
            let badField = try await app.request(.post, "/v1/replies/\(UUID())/send", key: agent, json: #"{"last_seen_message_id":"null"}"#)
            try expectProblem(badField, .badRequest, "malformed-body")
            // No body at all where one is read: the body is what is missing, not a parameter.
            let noBody = try await app.request(.post, "/v1/replies/\(UUID())/send", key: agent)
            try expectProblem(noBody, .badRequest, "malformed-body")
            #expect((try noBody.json["detail"] as? String)?.contains("takes a JSON body") == true, "\(noBody.text)")
            let badStatus = try await app.request(.get, "/v1/tickets?status=bogus", key: agent)
            try expectProblem(badStatus, .badRequest, "invalid-parameter")
            #expect(try badStatus.json["detail"] as? String == "status: 'bogus' is not one of new, open, pending, on_hold, solved, closed", "\(badStatus.text)")
            #expect((try badStatus.json["errors"] as? [[String: String]])?.first?["pointer"] == "status")
            try expectProblem(try await app.request(.get, "/v1/tickets?limit=0", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/tickets?limit=201", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/tickets?limit=ten", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/tickets?cursor=bm90LW91cnM", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(
                try await app.request(.get, "/v1/tickets?unassigned=true&assignee_id=\(UUID())", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/customers/\(UUID())", key: agent), .notFound, "not-found")
        }
    }

    @Test("an instant past the year 9999 (which PostgresNIO traps on) is a 400 naming it, or no time at all in a mail's Date; the server stays up")
    func yearsBeyondFourDigits() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let gateway = try await app.keySecret(.gateway)
            let query = try await app.request(
                .get, "/v1/business-calendars/\(UUID())/business-time?from=300000-01-01T00:00:00Z&add_seconds=60", key: supervisor)
            try expectProblem(query, .badRequest, "invalid-parameter")
            #expect(query.text.contains("from"), "\(query.text)")
            let form = try await app.request(.post, "/v1/inbound/webform", key: gateway, json: #"""
                {"form_id":"contact","submission_id":"far-future","email":"future@example.jp","body":"x","submitted_at":"300000-01-01T00:00:00Z"}
                """#)
            #expect(form.status == .badRequest, "\(form.text)")
            #expect((try form.json["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/submitted_at", "\(form.text)")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)

            // A mail is taken whatever its Date says; a date no mailer meant is no date.
            let mail = try await app.postMail(gateway, testMail(subject: "未来から", id: "far-future@example.jp", headers: "Date: Sat, 1 Jan 300000 00:00:00 +0000\n"))
            #expect(mail.status == .created, "\(mail.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE provider_message_id IS NOT NULL AND sent_at IS NULL") == 1)
            #expect(try await app.request(.get, "/health/live").status == .ok)
        }
    }

    @Test("a body over the limit is refused from its Content-Length before it is sent, and mid-stream when chunked")
    func oversizeBodies() async throws {
        try await TestApp.run(configure: { $0.maxBodyBytes = 4096 }) { app in
            let admin = try await app.keySecret(.admin)
            let port = try #require(app.client.port)

            // Declare 50 MB, send 10 bytes, and wait: the answer must come without the rest.
            let declared = try await RawHTTP.exchange(port: port, request: """
                POST /v1/api-keys HTTP/1.1\r
                Host: localhost\r
                Authorization: Bearer \(admin)\r
                Content-Type: application/json\r
                Content-Length: 50000000\r
                \r
                {"name":"x
                """)
            #expect(declared.hasPrefix("HTTP/1.1 413"), "\(declared)")
            #expect(declared.contains("application/problem+json"))
            #expect(declared.contains("payload-too-large"))

            // Chunked: no length to check up front, so it is counted as it arrives.
            let chunk = String(repeating: "a", count: 3000)
            let chunked = try await RawHTTP.exchange(port: port, request: """
                POST /v1/api-keys HTTP/1.1\r
                Host: localhost\r
                Authorization: Bearer \(admin)\r
                Content-Type: application/json\r
                Transfer-Encoding: chunked\r
                \r
                bb8\r
                \(chunk)\r
                bb8\r
                \(chunk)\r
                0\r
                \r

                """)
            #expect(chunked.hasPrefix("HTTP/1.1 413"), "\(chunked)")

            // Just under the limit is read and judged on its content.
            let small = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"ok","role":"dashboard"}"#)
            #expect(small.status == .created)
        }
    }
}

/// A bare HTTP/1.1 exchange over a blocking socket, for requests no well-behaved client would send.
enum RawHTTP {
    /// A blocking loopback connection to `port` (reads give up after `timeoutSeconds` without data)
    /// with `request` already sent. The caller closes it.
    /// `receiveBuffer` shrinks the socket's receive buffer (before connecting, so the window stays small).
    static func connectSending(port: Int, request: String, timeoutSeconds: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw EmbeddedPostgresError("socket failed") }
        if var size = receiveBuffer { setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw EmbeddedPostgresError("connect failed")
        }
        _ = Array(request.utf8).withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return descriptor
    }

    /// On a thread of its own: a blocking read on Swift's cooperative pool (a thread per core) would
    /// stall the servers running in this same process.
    static func exchange(port: Int, request: String, timeoutSeconds: Int = 10) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try blockingExchange(port: port, request: request, timeoutSeconds: timeoutSeconds) }) }.start()
        }
    }

    private static func blockingExchange(port: Int, request: String, timeoutSeconds: Int) throws -> String {
        let descriptor = try connectSending(port: port, request: request, timeoutSeconds: timeoutSeconds)
        defer { close(descriptor) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            response += buffer[0..<count]
            // One response is all we want; stop once its head and short body are in.
            if let text = String(bytes: response, encoding: .utf8), text.contains("\r\n\r\n"), text.hasSuffix("}") { break }
        }
        return String(decoding: response, as: UTF8.self)
    }
}

extension ProblemTests {
    @Test("an Accept that excludes JSON is 406, said once")
    func notAcceptable() async throws {
        try await TestApp.run { app in
            let response = try await app.request(.get, "/v1/tickets", key: try await app.keySecret(.agent), headers: [.accept: "text/html"])
            try expectProblem(response, .notAcceptable, "not-acceptable")
            let detail = try #require(try response.json["detail"] as? String)
            #expect(detail.components(separatedBy: "not acceptable").count == 2, "\(detail)")
            // q=0 says "not this"; wildcards and a parameter-laden JSON are fine.
            let agent = try await app.keySecret(.agent)
            try expectProblem(try await app.request(.get, "/v1/me", key: agent, headers: [.accept: "application/json;q=0, text/html"]),
                              .notAcceptable, "not-acceptable")
            for accept in ["*/*", "application/*", "application/json; charset=utf-8", "text/html;q=0.9, */*;q=0.1"] {
                #expect(try await app.request(.get, "/v1/me", key: agent, headers: [.accept: accept]).status == .ok, "\(accept)")
            }
        }
    }

    @Test("a query that is not name=value pairs, or has a broken percent-escape, is a 400 naming the part, never a 500 or a silent empty filter")
    func malformedQueries() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            for query in ["unassigned", "&limit=5", "limit=5&&status=open", "status=open&x", "category=100%", "queue=a%zz"] {
                let response = try await app.request(.get, "/v1/tickets?\(query)", key: agent)
                try expectProblem(response, .badRequest, "invalid-parameter")
                #expect((try response.json["detail"] as? String)?.isEmpty == false, "\(query): \(response.text)")
            }
            for query in ["", "limit=5", "limit=5&", "status=op%65n&limit=5"] {
                let response = try await app.request(.get, "/v1/tickets?\(query)", key: agent)
                #expect(response.status == .ok, "\(query): \(response.text)")
            }
        }
    }

    @Test("a query parameter the operation does not take is a 400 naming it and listing the ones it takes; a provider webhook takes any")
    func unknownQueryParameters() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let misspelt = try await app.request(.get, "/v1/tickets?stauts=open&limit=5", key: agent)
            try expectProblem(misspelt, .badRequest, "invalid-parameter")
            let errors = try #require(try misspelt.json["errors"] as? [[String: Any]])
            #expect(errors.count == 1)
            #expect(errors.first?["pointer"] as? String == "stauts")
            let message = try #require(errors.first?["message"] as? String)
            #expect(message.contains("status") && message.contains("limit"), "\(message)")

            // An operation without query parameters says so; the report's own `format` and `bom` pass.
            let none = try await app.request(.get, "/v1/me?verbose=1", key: agent)
            try expectProblem(none, .badRequest, "invalid-parameter")
            #expect(none.text.contains("takes no query parameters"), "\(none.text)")
            let dashboard = try await app.keySecret(.dashboard)
            let csv = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02&format=csv&bom=true", key: dashboard)
            #expect(csv.status == .ok, "\(csv.text)")

            // LINE's webhook at a URL with the operator's own query: checked on its signature only.
            let line = try await app.request(.post, "/v1/inbound/chat/line?shop=tokyo", json: #"{"destination":"U1","events":[]}"#)
            #expect(line.status != .badRequest, "\(line.text)")
            #expect(!line.text.contains("invalid-parameter"), "\(line.text)")
        }
    }

    @Test("HEAD is answered wherever GET is; a compressed body is 415, not stored or misread")
    func headAndContentEncoding() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let live = try await app.patiently("/health/live", method: .head, headers: [:], body: nil)
            #expect(live.status == .ok, "\(live.status)")
            #expect((live.body?.readableBytes ?? 0) == 0)
            let tickets = try await app.patiently("/v1/tickets", method: .head, headers: [.authorization: "Bearer \(agent)"], body: nil)
            #expect(tickets.status == .ok, "\(tickets.status)")
            #expect(try await app.patiently("/v1/tickets", method: .head, headers: [:], body: nil).status == .unauthorized)

            let boss = try await app.keySecret(.supervisor)
            let gzipped = try await app.request(.post, "/v1/templates", key: boss, headers: [.contentEncoding: "gzip"], json: #"{"name":"t","body":"x"}"#)
            try expectProblem(gzipped, .unsupportedMediaType, "unsupported-media-type")
            #expect(gzipped.headers[.acceptEncoding] == "identity")
            #expect(try await app.count("SELECT count(*) FROM templates") == 0)
        }
    }

    @Test("Accept is judged before the handler runs: a write it refuses is not made, and a CSV export it refuses never starts")
    func notAcceptableBeforeWork() async throws {
        try await TestApp.run(configure: { $0.reportConcurrency = 1 }) { app in
            let admin = try await app.keySecret(.admin)
            let keys = try await app.count("SELECT count(*) FROM api_keys")
            let refused = try await app.request(.post, "/v1/api-keys", key: admin, headers: [.accept: "text/plain"],
                                                json: #"{"name":"dashboard","role":"dashboard"}"#)
            try expectProblem(refused, .notAcceptable, "not-acceptable")
            // Before, the key was made and its secret, shown only in that answer, lost.
            #expect(try await app.count("SELECT count(*) FROM api_keys") == keys)

            let dashboard = try await app.keySecret(.dashboard)
            let range = "from=2026-01-01&to=2026-02-01"
            for _ in 0..<3 {
                let csvRefused = try await app.request(.get, "/v1/reports/sla-breaches?\(range)&format=csv", key: dashboard, headers: [.accept: "application/json"])
                try expectProblem(csvRefused, .notAcceptable, "not-acceptable")
            }
            // An Accept that allows CSV but not JSON gets CSV without format=.
            let textAny = try await app.request(.get, "/v1/reports/volume?\(range)", key: dashboard, headers: [.accept: "text/*"])
            #expect(textAny.status == .ok, "\(textAny.text)")
            #expect(textAny.headers[.contentType]?.hasPrefix("text/csv") == true, "\(textAny.headers)")
            // One slot, and it is free. (A refused export that had started kept its slot and connection
            // for good once its rows passed the pipe's four chunks: ChunkPipe's reader test.)
            let csv = try await app.request(.get, "/v1/reports/sla-breaches?\(range)&format=csv", key: dashboard)
            #expect(csv.status == .ok, "\(csv.text)")
        }
    }
}

extension ProblemTests {
    @Test("a NUL character in text, or a blank name, is a clear 422, and nothing is written")
    func nulCharacters() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let template = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"a","body":"x\u0000y"}"#)
            try expectProblem(template, .unprocessableContent, "validation-failed")
            #expect((try template.json["detail"] as? String)?.contains("NUL") == true)
            let rule = try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"a\u0000","priority":"high","vip_only":true}"#)
            try expectProblem(rule, .unprocessableContent, "validation-failed")
            try expectProblem(
                try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"  ","body":"x"}"#), .unprocessableContent, "validation-failed")
            try expectProblem(
                try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"　","priority":"high","vip_only":true}"#),
                .unprocessableContent, "validation-failed")
            // Lengths and patterns the generated decoder does not check are refused by the schema, field named.
            let long = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"\#(String(repeating: "長", count: 201))","body":"x"}"#)
            try expectProblem(long, .unprocessableContent, "validation-failed")
            #expect((try long.json["errors"] as? [[String: String]])?.first?["pointer"] == "/name")
            let ticket = try await app.ticket(customer: try await app.customer())
            let queue = try await app.request(.patch, "/v1/tickets/\(ticket)", key: boss, headers: [.ifMatch: "\"1\""], json: #"{"queue":"Not A Queue"}"#)
            try expectProblem(queue, .unprocessableContent, "validation-failed")
            #expect((try queue.json["errors"] as? [[String: String]])?.first?["pointer"] == "/queue")
            #expect(try await app.count("SELECT (SELECT count(*) FROM templates) + (SELECT count(*) FROM rules) + (SELECT count(*) FROM events)") == 0)
        }
    }
}
