import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import Madoguchi

@Suite("What the contract forbids is refused over HTTP, before anything is written", .timeLimit(.minutes(15)))
struct ContractValidationTests {
    static func refused(_ response: TestClient.Response, at pointers: [String]) throws {
        try expectProblem(response, .unprocessableContent, "validation-failed")
        #expect((try response.json["errors"] as? [[String: String]])?.compactMap { $0["pointer"] } == pointers, "\(response.text)")
    }

    @Test("an empty template, a 5,000-character category, a 600-character recipient, nulls for members that may not be null: each a 422 naming the member")
    func refusals() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let admin = try await app.keySecret(.admin)
            try Self.refused(try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"空","body":""}"#), at: ["/body"])
            try Self.refused(
                try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"r","categories":["\#(String(repeating: "長", count: 5000))"],"priority":"high"}"#),
                at: ["/categories/0"])
            try Self.refused(try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"k","role":"gateway","agent_id":null}"#), at: ["/agent_id"])
            let customer = try await app.customer()
            try Self.refused(try await app.request(.patch, "/v1/customers/\(customer)", key: boss, json: #"{"display_name":null}"#), at: ["/display_name"])
            let scene = try await ReplyTests.scene(app)
            try Self.refused(
                try await app.request(.post, "/v1/tickets/\(scene.ticket)/notes", key: scene.agent.secret, json: #"{"body":"確認","mentions":null}"#),
                at: ["/mentions"])
            let long = String(repeating: "a", count: 600) + "@example.jp"
            try Self.refused(
                try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret,
                                      json: #"{"body":"山田 花子 様","recipients":["\#(long)"],"subject":"\#(String(repeating: "件", count: 2001))"}"#),
                at: ["/recipients/0", "/subject"])
            #expect(try await app.count("SELECT (SELECT count(*) FROM templates) + (SELECT count(*) FROM rules) + (SELECT count(*) FROM replies)") == 0)
            #expect(try await app.count("SELECT count(*) FROM api_keys WHERE name = 'k'") == 0)
            // Wrong types are still the decoder's 400, naming the member.
            let wrongType = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"t","body":12}"#)
            #expect(wrongType.status == .badRequest, "\(wrongType.text)")
            // Without a Content-Type, or with a wildcard one, the body is decoded as JSON: checked as JSON too.
            let rule = #"{"name":"r","categories":["\#(String(repeating: "長", count: 5000))"],"priority":"high"}"#
            for contentType in [nil, "*/*", "application/*"] {
                var headers: HTTPFields = [.authorization: "Bearer \(boss)"]
                if let contentType { headers[.contentType] = contentType }
                try Self.refused(try await app.patiently("/v1/rules", method: .post, headers: headers, body: ByteBuffer(string: rule)), at: ["/categories/0"])
            }
            #expect(try await app.count("SELECT count(*) FROM rules") == 0)
        }
    }

    @Test("every member the decoder could not read is named in one 400: wrong types, a missing one, one not taken, a value outside its list; nothing is stored")
    func everyUnreadableMember() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let boss = try await app.keySecret(.supervisor)
            func unreadable(_ response: TestClient.Response, _ pointers: [String]) throws {
                try expectProblem(response, .badRequest, "malformed-body")
                #expect((try response.json["errors"] as? [[String: String]])?.compactMap { $0["pointer"] } == pointers, "\(response.text)")
            }
            try unreadable(try await app.request(.post, "/v1/inbound/webform", key: gateway,
                                                 json: #"{"form_id":"e","submission_id":"e9","body":"x","email":3,"phone":4,"extra":true}"#),
                           ["/email", "/extra", "/phone"])
            try unreadable(try await app.request(.post, "/v1/inbound/webform", key: gateway, json: #"{"form_id":"e","body":1}"#),
                           ["/submission_id", "/body"])
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
            // A supervisor's policy with three values outside their lists and a zero target: the three
            // first (what cannot be read), each named; the zero once they read.
            let policy = try await app.request(.post, "/v1/sla-policies", key: boss, json: """
                {"name":"x","calendar_id":"\(CalendarTests.standard)","targets":[{"priority":"normal","channel":"web","first_response_minutes":0},{"priority":"urgnet","channel":"line"}]}
                """)
            try unreadable(policy, ["/targets/0/channel", "/targets/1/channel", "/targets/1/priority"])
            #expect(policy.text.contains("'urgnet' is not one of"), "\(policy.text)")
            // A body within the contract is taken as before.
            #expect(try await app.request(.post, "/v1/inbound/webform", key: gateway,
                                          json: #"{"form_id":"e","submission_id":"e10","body":"x","email":"e10@example.jp"}"#).status == .created)
        }
    }

    @Test("query and header parameters outside the contract are one 400 naming each; gateway bodies are checked too and nothing is stored")
    func parametersAndGatewayBodies() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let dashboard = try await app.keySecret(.dashboard)
            func invalid(_ response: TestClient.Response, _ names: [String]) throws {
                try expectProblem(response, .badRequest, "invalid-parameter")
                #expect((try response.json["errors"] as? [[String: String]])?.compactMap { $0["pointer"] } == names, "\(response.text)")
            }
            try invalid(try await app.request(.get, "/v1/agents?queue=", key: boss), ["queue"])
            // An identifier sent empty is named too, and said to be empty (the runtime's words alone named none).
            for path in ["/v1/events?ticket_id=", "/v1/tickets?customer_id=", "/v1/reports/volume?from=2026-12-07&to=2026-12-07&agent_id="] {
                let empty = try await app.request(.get, path, key: path.hasPrefix("/v1/tickets") ? boss : dashboard)
                try invalid(empty, [String(path.split(separator: "?")[1].split(separator: "&").last!.dropLast())])
                #expect(empty.text.contains("is empty"), "\(path): \(empty.text)")
            }
            // Escapes that are well formed but are no UTF-8 are not called broken.
            let latin1 = try await app.request(.get, "/v1/customers?email=%FF%FE", key: boss)
            try invalid(latin1, ["email=%FF%FE"])
            #expect(latin1.text.contains("not UTF-8") && !latin1.text.contains("broken"), "\(latin1.text)")
            #expect(try await app.request(.get, "/v1/customers?email=%E3%81", key: boss).text.contains("not UTF-8"))
            #expect(try await app.request(.get, "/v1/customers?email=%G1", key: boss).text.contains("broken percent-escape"))
            try invalid(try await app.request(.get, "/v1/customers?external_id=\(String(repeating: "0", count: 513))", key: boss), ["external_id"])
            // NUL cannot be stored or compared by PostgreSQL: refused before any query runs.
            try invalid(try await app.request(.get, "/v1/reports/sla?from=2026-01-01&to=2026-01-02&time_zone=Asia%2FTokyo%00", key: dashboard), ["time_zone"])
            try invalid(try await app.request(.get, "/v1/tickets?limit=500&unassigned=true", key: boss), ["limit"])
            let gateway = try await app.keySecret(.gateway)
            let longKey = String(repeating: "k", count: 300)
            let sms = #"{"provider":"p","provider_message_id":"1","from":"+819012345678","to":"+81312345678","body":"hi","received_at":null}"#
            try Self.refused(try await app.request(.post, "/v1/inbound/sms", key: gateway, json: sms), at: ["/received_at"])
            let form = #"{"form_id":"f","submission_id":"s","body":"b","email":"a@example.jp","attachments":null}"#
            try Self.refused(try await app.request(.post, "/v1/inbound/webform", key: gateway, json: form), at: ["/attachments"])
            try invalid(try await app.request(.post, "/v1/inbound/webform", key: gateway, headers: [.init("Idempotency-Key")!: longKey],
                                              json: #"{"form_id":"f","submission_id":"s","body":"b","email":"a@example.jp"}"#), ["idempotency-key"])
            // A form written in Shift_JIS: said so, not "not valid JSON".
            let sjis = ByteBuffer(bytes: Array(#"{"form_id":"f","submission_id":"sj","email":"a@example.jp","body":""#.utf8) + [0x82, 0xA8, 0x96, 0xE2] + Array(#""}"#.utf8))
            let declared = try await app.patiently("/v1/inbound/webform", method: .post,
                                                   headers: [.authorization: "Bearer \(gateway)", .contentType: "application/json; charset=Shift_JIS"], body: sjis)
            try expectProblem(declared, .unsupportedMediaType, "unsupported-media-type")
            #expect(declared.text.contains("UTF-8") && declared.text.contains("shift_jis"), "\(declared.text)")
            let undeclared = try await app.patiently("/v1/inbound/webform", method: .post,
                                                     headers: [.authorization: "Bearer \(gateway)", .contentType: "application/json"], body: sjis)
            try expectProblem(undeclared, .badRequest, "malformed-body")
            #expect(undeclared.text.contains("not UTF-8 (byte 67"), "\(undeclared.text)")
            #expect(try await app.request(.post, "/v1/inbound/webform", key: gateway, headers: [.contentType: "application/json; charset=\"UTF-8\""],
                                          json: #"{"form_id":"f","submission_id":"u8","body":"お問い合わせ","email":"a@example.jp"}"#).status == .created)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 1)
            // Well-formed parameters still pass.
            #expect(try await app.request(.get, "/v1/agents?queue=general", key: boss).status == .ok)
        }
    }

    @Test("a malformed percent escape in the query is answered, with or without a key, and the service goes on answering")
    func malformedEscapes() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            for query in ["a=%", "a=%zz", "%=1", "limit=10%", "limit=%E3%81"] {
                let open = try await app.request(.get, "/health/live?\(query)")
                #expect(open.status.code < 500, "\(query): \(open.status) \(open.text)")
                let tickets = try await app.request(.get, "/v1/tickets?\(query)", key: boss)
                #expect(tickets.status.code >= 400 && tickets.status.code < 500 || tickets.status == .ok, "\(query): \(tickets.status) \(tickets.text)")
            }
            // A member named twice: the contract check and the decoder would each read another value.
            let gateway = try await app.keySecret(.gateway)
            let links = (0..<50).map { #"{"filename":"a\#($0).png","media_type":"image/png","url":"https://files.example/\#($0).png"}"# }
            for body in [
                #"{"provider":"line","conversation_id":"c1","provider_message_id":"m1","sender":{"provider_user_id":"u1"},"text":"写真","attachments":[\#(links.joined(separator: ","))],"attachments":[]}"#,
                #"{"provider":"line","conversation_id":"c1","provider_message_id":"m1","sender":{"provider_user_id":"u1","provider_user_\u0069d":"u2"},"text":"写真"}"#,
            ] {
                let twice = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: body)
                try expectProblem(twice, .badRequest, "malformed-body")
            }
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
            let once = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: #"""
                {"provider":"line","conversation_id":"c1","provider_message_id":"m1","sender":{"provider_user_id":"u1"},"text":"\"attachments\":[]",
                 "attachments":[{"filename":"a.png","media_type":"image/png","url":"https://files.example/a.png"}]}
                """#)
            #expect(once.status == .created, "\(once.text)")

            let bad = try await app.request(.get, "/v1/tickets?limit=%zz", key: boss)
            #expect(bad.status == .badRequest, "\(bad.text)")
            #expect(try await app.request(.get, "/v1/tickets?limit=5", key: boss).status == .ok)

            // A cursor whose instant PostgreSQL cannot compute with is refused like any other forged one.
            func cursor(_ parts: [String]) -> String { PageCursor.encode(parts).addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }
            let far = "-9000000000000000000"
            let customer = try await app.customer()
            for path in ["/v1/tickets?sort=response_due&cursor=\(cursor(["response_due", far, "1"]))",
                         "/v1/customers/\(customer)/timeline?cursor=\(cursor([far, UUID().uuidString]))",
                         "/v1/reports/sla-breaches?from=2026-01-01&to=2026-01-02&cursor=\(cursor([far, "1", "first_response"]))"] {
                let refused = try await app.request(.get, path, key: boss)
                try expectProblem(refused, .badRequest, "invalid-parameter")
            }
        }
    }
}
