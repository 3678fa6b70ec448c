import Foundation
import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("Priority rules, stored and applied", .timeLimit(.minutes(15)))
struct RuleTests {
    @Test("supervisors manage rules; agents read them; a rule needs a condition and a unique name")
    func management() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let agent = try await app.keySecret(.agent)
            let rule = #"{"name":"クレーム","priority":"urgent","keywords":["クレーム","至急"]}"#
            try expectProblem(try await app.request(.post, "/v1/rules", key: agent, json: rule), .forbidden, "forbidden")
            let created = try await app.request(.post, "/v1/rules", key: boss, json: rule)
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(try created.json["id"] as? String)
            try expectProblem(try await app.request(.post, "/v1/rules", key: boss, json: rule), .conflict, "name-taken")
            try expectProblem(
                try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"空","priority":"high"}"#), .unprocessableContent, "validation-failed")
            let updated = try await app.request(
                .put, "/v1/rules/\(id)", key: boss, json: #"{"name":"クレーム","priority":"urgent","keywords":["クレーム"],"active":false}"#)
            #expect(try updated.json["active"] as? Bool == false)
            let list = try await app.request(.get, "/v1/rules", key: agent)
            #expect((try list.json["items"] as? [[String: Any]])?.map { $0["keywords"] as? [String] } == [["クレーム"]])
        }
    }

    @Test("applied to a new ticket: the highest matching rule raises its priority with a reason; a rule can require approval")
    func prioritize() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            _ = try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"返金","priority":"high","keywords":["返金"]}"#)
            _ = try await app.request(
                .post, "/v1/rules", key: boss, json: #"{"name":"肌トラブル","priority":"urgent","keywords":["肌に合わない"],"requires_approval":true}"#)
            let scene = try await ReplyTests.scene(app)
            let match = try await app.database.withConnection { connection in
                let store = RuleStore(logger: TestCluster.logger)
                return try await store.apply(
                    try await store.list(activeOnly: true, on: connection).map(\.0), ticketID: scene.ticket, customerID: scene.customer,
                    channel: .email, facts: .init(category: nil, priority: .normal, isVIP: false),
                    subject: "返金希望", body: "化粧水が肌に合わないので返金してください", recipients: [], on: connection)
            }
            #expect(match?.priority?.rule.name == "肌トラブル")
            let ticket = try await app.request(.get, "/v1/tickets/\(scene.ticket)", key: scene.agent.secret)
            #expect(try ticket.json["priority"] as? String == "urgent")
            #expect(try ticket.json["priority_reason"] as? String == "rule 肌トラブル: keyword 肌に合わない")
            #expect(try await app.eventTypes(ticket: scene.ticket).last == "ticket.prioritized")

            // Even an agent who needs no approval must submit on this ticket.
            let reply = try await ReplyTests.draft(scene, #"{"body":"山田 花子 様\nご不便をおかけしております。"}"#)
            let refused = try await ReplyTests.send(scene, reply)
            try expectProblem(refused, .conflict, "approval-required")
            #expect((try refused.json["detail"] as? String)?.contains("肌トラブル") == true)
        }
    }

    @Test("a rule asking for approval that loses the priority to another still says so in ticket.prioritized")
    func approvalFromALosingRule() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            _ = try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"VIP","priority":"high","vip_only":true,"requires_approval":true}"#)
            _ = try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"クレーム","priority":"urgent","keywords":["クレーム"]}"#)
            let scene = try await ReplyTests.scene(app)
            try await app.database.withConnection { connection in
                let store = RuleStore(logger: TestCluster.logger)
                try await store.apply(
                    try await store.list(activeOnly: true, on: connection).map(\.0), ticketID: scene.ticket, customerID: scene.customer,
                    channel: .email, facts: .init(category: nil, priority: .normal, isVIP: true),
                    subject: "クレームです", body: "届いた商品が違います", recipients: [], on: connection)
            }
            #expect(try await app.eventTypes(ticket: scene.ticket).last == "ticket.prioritized", "no rule routed: no ticket.routed")
            let data = try await app.strings("SELECT data::text FROM events WHERE ticket_id = \(scene.ticket) AND type = 'ticket.prioritized'")
            let text = try #require(data.first)
            let event = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect(event["rule"] as? String == "クレーム" && event["priority"] as? String == "urgent")
            #expect(event["requires_approval"] as? Bool == true && event["approval_rule"] as? String == "VIP", "\(event)")
        }
    }
}
