import Foundation
import HTTPTypes
import PostgresNIO
import Testing
@testable import Madoguchi

/// The unanswered guard (返信漏れ): `GET /v1/tickets?awaiting_reply=true` lists every customer still
/// waiting for us, whatever the ticket's status, longest wait first.
@Suite("The unanswered guard: who is still waiting for us", .timeLimit(.minutes(15)))
struct AwaitingReplyTests {
    static func ticket(_ app: TestApp, _ id: String, key: String) async throws -> [String: Any] {
        let response = try await app.request(.get, "/v1/tickets/\(id)", key: key)
        #expect(response.status == .ok, "\(response.text)")
        return try response.json
    }

    /// Ticket ids of every page of `GET /v1/tickets?awaiting_reply=true…`, following the cursors.
    static func waiting(_ app: TestApp, key: String, query: String = "", pageSize: Int = 200) async throws -> [String] {
        var ids: [String] = []
        var cursor: String?
        repeat {
            let page = try await app.request(
                .get, "/v1/tickets?awaiting_reply=true&limit=\(pageSize)\(query)" + (cursor.map { "&cursor=\($0)" } ?? ""), key: key)
            #expect(page.status == .ok, "\(page.text)")
            ids += ((try page.json["items"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
            cursor = try page.json["next_cursor"] as? String
        } while cursor != nil && ids.count < 1000
        return ids
    }

    @Test("""
        a customer's mail starts the wait and an agent's reply ends it; the automatic acknowledgement, an internal note \
        and the customer's own vacation auto-reply change nothing; a ticket solved without an answer is still listed
        """)
    func waitStartsAndEnds() async throws {
        try await TestApp.run(configure: { $0.delivery.autoReplyTemplate = "受付確認" }) { app in
            let supervisor = try await app.keySecret(.supervisor)
            #expect(try await app.request(.post, "/v1/templates", key: supervisor, json: #"{"name":"受付確認","body":"お問い合わせを受け付けました。"}"#)
                .status == .created)
            let conversation = try await DeliveryTests.customerWrites(app, from: "hanako@example.jp")
            let agent = conversation.agent
            let id = conversation.ticket

            let opened = try await Self.ticket(app, id, key: agent)
            #expect(opened["awaiting_reply_since"] as? String == opened["last_customer_message_at"] as? String)
            #expect(opened["last_responded_at"] == nil)
            // The acknowledgement went out (to the outbox) as an outbound message; the customer still waits.
            #expect(try await app.count("""
                SELECT count(*) FROM messages WHERE direction = 'outbound' AND author_agent_id = '00000000-0000-4000-8000-00000000a070'
                """) == 1)
            #expect(try await Self.waiting(app, key: agent) == [id])

            let note = try await app.request(.post, "/v1/tickets/\(id)/notes", key: agent, json: #"{"body":"在庫を確認中"}"#)
            #expect(note.status == .created, "\(note.text)")
            #expect(try await Self.waiting(app, key: agent) == [id])

            // The agent has seen everything on the timeline, the note and the acknowledgement included.
            let timeline = try await app.request(.get, "/v1/tickets/\(id)/messages", key: agent).json["items"] as? [[String: Any]]
            let seen = DeliveryTests.Conversation(
                app: app, agent: agent, supervisor: conversation.supervisor, ticket: id,
                lastMessage: try #require(timeline?.last?["id"] as? String), customerMessageID: conversation.customerMessageID)
            _ = try await DeliveryTests.answer(seen, "確認いたします。")
            let answered = try await Self.ticket(app, id, key: agent)
            #expect(answered["awaiting_reply_since"] == nil)
            #expect(answered["last_responded_at"] != nil)
            #expect(try await Self.waiting(app, key: agent).isEmpty)
            let notWaiting = try await app.request(.get, "/v1/tickets?awaiting_reply=false", key: agent)
            #expect(((try notWaiting.json["items"] as? [[String: Any]]) ?? []).map { $0["id"] as? String } == [id])

            // The customer's mailer answers our reply by itself: that is not the customer writing.
            let replyMessageID = try #require(try await app.request(.get, "/v1/tickets/\(id)/messages", key: agent).json["items"]
                .flatMap { $0 as? [[String: Any]] }?.last { $0["direction"] as? String == "outbound" }?["email_message_id"] as? String)
            let gateway = try await app.keySecret(.gateway)
            let vacation = try await app.postMail(gateway, testMail(
                from: "hanako@example.jp", subject: "自動応答: 不在のお知らせ", id: "away-1@example.jp",
                headers: "Auto-Submitted: auto-replied\nIn-Reply-To: <\(replyMessageID)>\n"))
            #expect(try vacation.json["classification"] as? String == "auto_reply")
            #expect(try vacation.json["ticket_id"] as? String == id)
            #expect(try await Self.waiting(app, key: agent).isEmpty)

            // She writes back: waiting again, from this message.
            let again = try await app.postMail(gateway, testMail(
                from: "hanako@example.jp", subject: "Re: 注文について", id: "again-1@example.jp", headers: "In-Reply-To: <\(replyMessageID)>\n"))
            #expect(try again.json["ticket_id"] as? String == id, "\(again.text)")
            let reopened = try await Self.ticket(app, id, key: agent)
            #expect(reopened["awaiting_reply_since"] as? String == reopened["last_customer_message_at"] as? String)
            // (JSON times are whole seconds: the two can share one.)
            #expect((reopened["awaiting_reply_since"] as? String ?? "") >= (answered["last_responded_at"] as? String ?? "~"))
            #expect(try await Self.waiting(app, key: agent) == [id])

            // Marked solved without an answer: still waiting, still listed, with its status.
            let version = try #require(reopened["version"] as? Int)
            let solved = try await app.request(.patch, "/v1/tickets/\(id)", key: agent, headers: [.ifMatch: "\"\(version)\""], json: #"{"status":"solved"}"#)
            #expect(solved.status == .ok, "\(solved.text)")
            #expect(try await Self.waiting(app, key: agent) == [id])
            #expect(try await Self.waiting(app, key: agent, query: "&status=solved") == [id])
            #expect(try await Self.waiting(app, key: agent, query: "&status=open").isEmpty)

            // Closed while she waits: replies are refused now, and 対応不要 (no reply needed) ends the wait.
            let closed = try await app.request(.patch, "/v1/tickets/\(id)", key: agent, headers: [.ifMatch: "*"], json: #"{"status":"closed"}"#)
            #expect(closed.status == .ok, "\(closed.text)")
            #expect(try await Self.waiting(app, key: agent) == [id])
            let responses: PostgresQuery = "SELECT count(*) FROM ticket_responses WHERE ticket_id = \(UUID(uuidString: id)!)"
            let respondedBefore = try await app.count(responses)
            let dismissed = try await app.request(.patch, "/v1/tickets/\(id)", key: agent, headers: [.ifMatch: "*"], json: #"{"no_reply_needed":true}"#)
            #expect(dismissed.status == .ok, "\(dismissed.text)")
            #expect(try dismissed.json["awaiting_reply_since"] == nil)
            #expect(try dismissed.json["awaiting_reply_since"] == nil && dismissed.json["last_customer_message_at"] != nil)
            #expect(try await Self.waiting(app, key: agent).isEmpty)
            #expect(try await app.count(responses) == respondedBefore, "no response counted")
            #expect(try await app.eventTypes(ticket: UUID(uuidString: id)!).last == "ticket.updated")
        }
    }

    @Test("longest wait first, page after page, whatever the ticket numbers; a cursor from another listing is a 400")
    func longestWaitFirst() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            var tickets: [UUID] = []
            for index in 0..<5 {
                let customer = try await app.customer(email: "c\(index)@example.jp")
                let ticket = try await app.ticket(customer: customer)
                tickets.append(ticket)
            }
            // Waits that began in an order unlike the ticket numbers (two in the same microsecond).
            let starts = ["2026-11-30 09:00:00+09", "2026-11-28 09:00:00+09", "2026-11-29 09:00:00.000001+09", "2026-11-28 09:00:00+09", "2026-11-01 18:00:00+09"]
            for (ticket, start) in zip(tickets, starts) {
                try await app.execute("UPDATE tickets SET awaiting_reply_since = \(start)::timestamptz WHERE id = \(ticket)")
            }
            let expected = [tickets[4], tickets[1], tickets[3], tickets[2], tickets[0]].map { $0.uuidString.lowercased() }
            #expect(try await Self.waiting(app, key: dashboard, pageSize: 1) == expected)
            #expect(try await Self.waiting(app, key: dashboard, pageSize: 2) == expected)
            #expect(try await Self.waiting(app, key: dashboard) == expected)

            let plain = try await app.request(.get, "/v1/tickets?limit=1", key: dashboard)
            let plainCursor = try #require(try plain.json["next_cursor"] as? String)
            let mixed = try await app.request(.get, "/v1/tickets?awaiting_reply=true&cursor=\(plainCursor)", key: dashboard)
            try expectProblem(mixed, .badRequest, "invalid-parameter")
        }
    }

    @Test("a reply that fails for good leaves the customer waiting again, since their last message")
    func failedReplyWaitsAgain() async throws {
        let twilio = try await FakeProvider { _, _ in
            .init(status: .badRequest, body: #"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#)
        }
        try await TestApp.run(configure: ProviderDeliveryTests.configure(twilio: twilio)) { app in
            let conversation = try await ProviderDeliveryTests.customerTexts(app, from: "+819099990000")
            let reply = try await DeliveryTests.answer(conversation, "ご連絡です。")
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, reply)) == "failed")
            let ticket = try await Self.ticket(app, conversation.ticket, key: conversation.agent)
            #expect(ticket["awaiting_reply_since"] as? String == ticket["last_customer_message_at"] as? String)
            #expect(ticket["last_responded_at"] == nil, "a text that never arrived was no response")
            #expect(try await Self.waiting(app, key: conversation.agent) == [conversation.ticket])
        }
    }
}
