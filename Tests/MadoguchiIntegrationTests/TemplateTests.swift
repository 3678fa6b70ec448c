import Foundation
import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("Templates", .timeLimit(.minutes(15)))
struct TemplateTests {
    @Test("supervisors write versioned templates; agents read and render them for a ticket")
    func lifecycle() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let agent = try await app.key(.agent, name: "佐藤")
            let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
            let ticket = try await app.ticket(customer: customer)

            let template = #"{"name":"発送のお知らせ","subject":"ご注文 {{order.number}} 発送のお知らせ","body":"{{customer.name}} 様\n\nご注文 {{order.number}} を{{order.date}}に発送いたしました。\n担当：{{agent.name}}"}"#
            try expectProblem(try await app.request(.post, "/v1/templates", key: agent.secret, json: template), .forbidden, "forbidden")
            let created = try await app.request(.post, "/v1/templates", key: boss, json: template)
            #expect(created.status == .created, "\(created.text)")
            #expect(try created.json["variables"] as? [String] == ["order.number", "customer.name", "order.date", "agent.name"])
            let id = try #require(try created.json["id"] as? String)
            try expectProblem(try await app.request(.post, "/v1/templates", key: boss, json: template), .conflict, "name-taken")

            let rendered = try await app.request(
                .post, "/v1/templates/\(id)/render", key: agent.secret,
                json: #"{"ticket_id":"\#(ticket.uuidString)","order":{"number":"A-1234","date":"11月24日"}}"#)
            #expect(rendered.status == .ok, "\(rendered.text)")
            #expect(try rendered.json["subject"] as? String == "ご注文 A-1234 発送のお知らせ")
            #expect(try rendered.json["body"] as? String == "山田 花子 様\n\nご注文 A-1234 を11月24日に発送いたしました。\n担当：佐藤")
            // A value with a line break, or a long one, still renders a subject a reply can take.
            let broken = try await app.request(
                .post, "/v1/templates/\(id)/render", key: agent.secret,
                json: #"{"ticket_id":"\#(ticket.uuidString)","order":{"number":"A-1\nBcc: x@example.com","date":"11月24日"}}"#)
            #expect(try broken.json["subject"] as? String == "ご注文 A-1 Bcc: x@example.com 発送のお知らせ", "\(broken.text)")
            let long = try await app.request(
                .post, "/v1/templates/\(id)/render", key: agent.secret,
                json: #"{"ticket_id":"\#(ticket.uuidString)","order":{"number":"\#(String(repeating: "1", count: 1990))","date":"11月24日"}}"#)
            #expect((try long.json["subject"] as? String)?.count == 2000, "\(long.text.prefix(200))")

            let missing = try await app.request(
                .post, "/v1/templates/\(id)/render", key: agent.secret, json: #"{"ticket_id":"\#(ticket.uuidString)","order":{"number":"A-1234"}}"#)
            try expectProblem(missing, .unprocessableContent, "unfilled-variables")
            #expect((try missing.json["findings"] as? [[String: Any]])?.map { $0["text"] as? String } == ["order.date"])
            // Where it is, for an agent to find it in a long template: line 3, after "ご注文 {{order.number}} を".
            let finding = (try missing.json["findings"] as? [[String: Any]])?.first
            #expect(finding?["line"] as? Int == 3 && finding?["column"] as? Int == 23, "\(missing.text)")

            // A variable no ticket fills, or a {{ left open, is refused when saved, not found at a customer's render.
            let misspelt = try await app.request(
                .put, "/v1/templates/\(id)", key: boss, json: #"{"name":"発送のお知らせ","body":"{{customer.name}} 様\n{{custmer.name}}"}"#)
            try expectProblem(misspelt, .unprocessableContent, "validation-failed")
            let said = (try misspelt.json["errors"] as? [[String: String]])?.first
            #expect(said?["pointer"] == "/body" && said?["message"]?.contains("{{custmer.name}}") == true, "\(misspelt.text)")
            let open = try await app.request(
                .put, "/v1/templates/\(id)", key: boss, json: #"{"name":"発送のお知らせ","subject":"{{ticket.subject} のご案内","body":"{{customer.name 様"}"#)
            try expectProblem(open, .unprocessableContent, "validation-failed")
            #expect(Set(((try open.json["errors"] as? [[String: String]]) ?? []).compactMap { $0["pointer"] }) == ["/subject", "/body"], "\(open.text)")
            let updated = try await app.request(
                .put, "/v1/templates/\(id)", key: boss, json: #"{"name":"発送のお知らせ","body":"{{customer.name}} 様\n{{order.number}}"}"#)
            #expect(try updated.json["version"] as? Int == 2)
            #expect(try await app.count("SELECT count(*) FROM template_versions") == 2)
            // Both texts can be read back, newest first, with who wrote each.
            let versions = try await app.request(.get, "/v1/templates/\(id)/versions", key: agent.secret)
            #expect(versions.status == .ok, "\(versions.text)")
            let items = try #require(try versions.json["items"] as? [[String: Any]])
            #expect(items.compactMap { $0["version"] as? Int } == [2, 1])
            #expect((items.last?["body"] as? String)?.contains("{{order.date}}に発送いたしました") == true, "\(items)")
            #expect(items.allSatisfy { $0["written_by"] as? String != nil && $0["written_at"] as? String != nil }, "\(items)")
            try expectProblem(try await app.request(.get, "/v1/templates/\(UUID())/versions", key: agent.secret), .notFound, "not-found")
            // One saved before saving checked its variables is still refused when rendered.
            try await app.execute("UPDATE templates SET body = '{{customer.name}} 様' || chr(10) || '{{custmer.name}}' WHERE id = \(id)::uuid")
            let unknown = try await app.request(.post, "/v1/templates/\(id)/render", key: agent.secret, json: #"{"ticket_id":"\#(ticket.uuidString)"}"#)
            try expectProblem(unknown, .unprocessableContent, "unfilled-variables")
            #expect((try unknown.json["findings"] as? [[String: Any]])?.first?["type"] as? String == "unknown-variable")
            // Saved with CRLF line ends (a Windows editor's), the finding is placed as with LF.
            try await app.execute("""
                UPDATE templates SET body = '{{customer.name}} 様' || chr(13) || chr(10) || chr(13) || chr(10) || 'ご注文 {{order.number}} を{{order.date}}に'
                WHERE id = \(id)::uuid
                """)
            let crlf = try await app.request(
                .post, "/v1/templates/\(id)/render", key: agent.secret, json: #"{"ticket_id":"\#(ticket.uuidString)","order":{"number":"A-1234"}}"#)
            let placed = (try crlf.json["findings"] as? [[String: Any]])?.first
            #expect(placed?["line"] as? Int == 3 && placed?["column"] as? Int == 23, "\(crlf.text)")

            let list = try await app.request(.get, "/v1/templates", key: agent.secret)
            #expect((try list.json["items"] as? [Any])?.count == 1)
            try expectProblem(try await app.request(.get, "/v1/templates/\(UUID())", key: agent.secret), .notFound, "not-found")
        }
    }

    @Test("a supervisor removes a template: gone from the list, the reads and the renders, its versions kept and its name free; the acknowledgement's template stays")
    func removal() async throws {
        try await TestApp.run(configure: { $0.delivery.autoReplyTemplate = "受付確認" }) { app in
            let boss = try await app.keySecret(.supervisor)
            let agent = try await app.keySecret(.agent)
            let ticket = try await app.ticket(customer: try await app.customer())
            let created = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"お詫び","body":"ご迷惑をおかけしました。"}"#)
            let id = try #require(try created.json["id"] as? String)
            let edited = try await app.request(.put, "/v1/templates/\(id)", key: boss, json: #"{"name":"お詫び","body":"大変ご迷惑をおかけしました。"}"#)
            #expect(try edited.json["version"] as? Int == 2)

            try expectProblem(try await app.request(.delete, "/v1/templates/\(id)", key: agent), .forbidden, "forbidden")
            try expectProblem(try await app.request(.delete, "/v1/templates/\(id)", key: boss, headers: [.ifMatch: "\"1\""]),
                              .preconditionFailed, "precondition-failed")
            let removed = try await app.request(.delete, "/v1/templates/\(id)", key: boss, headers: [.ifMatch: "\"2\""])
            #expect(removed.status == .noContent, "\(removed.text)")
            try expectProblem(try await app.request(.delete, "/v1/templates/\(id)", key: boss), .notFound, "not-found")
            try expectProblem(try await app.request(.get, "/v1/templates/\(id)", key: agent), .notFound, "not-found")
            try expectProblem(try await app.request(.put, "/v1/templates/\(id)", key: boss, json: #"{"name":"お詫び","body":"x"}"#), .notFound, "not-found")
            try expectProblem(try await app.request(.post, "/v1/templates/\(id)/render", key: agent, json: #"{"ticket_id":"\#(ticket.uuidString)"}"#),
                              .notFound, "not-found")
            #expect((try await app.request(.get, "/v1/templates", key: agent).json["items"] as? [Any])?.isEmpty == true)
            // What it said stays, and who removed it is on the feed.
            let versions = try await app.request(.get, "/v1/templates/\(id)/versions", key: agent)
            #expect((try versions.json["items"] as? [[String: Any]])?.compactMap { $0["version"] as? Int } == [2, 1], "\(versions.text)")
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'template.deleted' AND data->>'template_id' = \(id)") == 1)
            // Its name is free for a new one.
            #expect(try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"お詫び","body":"申し訳ございません。"}"#).status == .created)

            // The automatic acknowledgement's template, by name or by id, is not removed.
            let acknowledgement = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"受付確認","body":"受け付けました。"}"#)
            let acknowledgementID = try #require(try acknowledgement.json["id"] as? String)
            try expectProblem(try await app.request(.delete, "/v1/templates/\(acknowledgementID)", key: boss), .conflict, "template-in-use")
            #expect(try await app.request(.get, "/v1/templates/\(acknowledgementID)", key: agent).status == .ok)
            // Nor renamed (it is found by its name, and renamed it could then be deleted); its text changes freely.
            let version = try #require(try await app.request(.get, "/v1/templates/\(acknowledgementID)", key: agent).json["version"] as? Int)
            try expectProblem(try await app.request(.put, "/v1/templates/\(acknowledgementID)", key: boss, headers: [.ifMatch: "\"\(version)\""],
                                                    json: #"{"name":"受付確認（旧）","body":"受け付けました。"}"#), .conflict, "template-in-use")
            #expect(try await app.request(.put, "/v1/templates/\(acknowledgementID)", key: boss, headers: [.ifMatch: "\"\(version)\""],
                                          json: #"{"name":"受付確認","body":"お問い合わせを受け付けました。"}"#).status == .ok)
        }
        // Named by id (in capitals, as a setting may be written), it is kept too.
        try await TestApp.run(configure: { $0.delivery.autoReplyTemplate = "00000000-0000-4000-8000-0000000000AC" }) { app in
            let boss = try await app.keySecret(.supervisor)
            try await app.execute("INSERT INTO templates (id, name, body) VALUES ('00000000-0000-4000-8000-0000000000ac', '受付', '受け付けました。')")
            try expectProblem(try await app.request(.delete, "/v1/templates/00000000-0000-4000-8000-0000000000ac", key: boss), .conflict, "template-in-use")
        }
    }

    @Test("a customer without a name cannot be greeted by a template that needs it")
    func namelessCustomer() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let customer = try await app.insertReturningID("INSERT INTO customers DEFAULT VALUES RETURNING id")
            let ticket = try await app.ticket(customer: customer)
            let created = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"挨拶","body":"{{customer.name}} 様"}"#)
            let id = try #require(try created.json["id"] as? String)
            let response = try await app.request(.post, "/v1/templates/\(id)/render", key: boss, json: #"{"ticket_id":"\#(ticket.uuidString)"}"#)
            try expectProblem(response, .unprocessableContent, "unfilled-variables")
        }
    }
}
