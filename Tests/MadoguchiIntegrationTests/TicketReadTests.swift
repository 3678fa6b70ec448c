import Foundation
import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("Reading customers, tickets and timelines", .timeLimit(.minutes(15)))
struct TicketReadTests {
    @Test("a customer with every identity")
    func customer() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let id = try await app.customer(name: "山田 花子", email: "Hanako.Yamada@example.jp")
            try await app.execute("""
                INSERT INTO customer_identities (customer_id, kind, value, undeliverable_at, undeliverable_reason)
                VALUES (\(id), 'phone', '+819012345678', now(), '5.1.1 user unknown')
                """)
            let response = try await app.request(.get, "/v1/customers/\(id)", key: agent)
            #expect(response.status == .ok)
            let body = try response.json
            #expect(body["id"] as? String == id.uuidString.lowercased())
            #expect(body["display_name"] as? String == "山田 花子")
            let identities = try #require(body["identities"] as? [[String: Any]])
            #expect(identities.map { $0["kind"] as? String } == ["email", "phone"])
            #expect(identities[0]["value"] as? String == "Hanako.Yamada@example.jp")
            #expect(identities[1]["undeliverable"] as? Bool == true)
            #expect(identities[1]["undeliverable_reason"] as? String == "5.1.1 user unknown")
        }
    }

    @Test("a ticket carries its version as ETag; If-None-Match with it is 304, after a change 200")
    func ticketETag() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let ticket = try await app.ticket(customer: try await app.customer())
            let first = try await app.request(.get, "/v1/tickets/\(ticket)", key: agent)
            #expect(first.status == .ok)
            #expect(first.headers[.eTag] == "\"1\"")
            #expect(try first.json["subject"] as? String == "注文した商品が届かない")
            #expect(try first.json["status"] as? String == "new")

            let unchanged = try await app.request(.get, "/v1/tickets/\(ticket)", key: agent, headers: [.ifNoneMatch: "\"1\""])
            #expect(unchanged.status == .notModified)
            #expect((unchanged.body?.readableBytes ?? 0) == 0)

            try await app.execute("UPDATE tickets SET status = 'open', version = version + 1 WHERE id = \(ticket)")
            let changed = try await app.request(.get, "/v1/tickets/\(ticket)", key: agent, headers: [.ifNoneMatch: "\"1\""])
            #expect(changed.status == .ok)
            #expect(changed.headers[.eTag] == "\"2\"")
            #expect(try await app.request(.get, "/v1/tickets/\(UUID())", key: agent).status == .notFound)
        }
    }

    @Test("the ticket list pages newest first through opaque cursors and a Link header, visiting each ticket once")
    func pagination() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            var created: [UUID] = []
            for index in 0..<7 { created.append(try await app.ticket(customer: customer, subject: "件名 \(index)")) }

            var seen: [String] = []
            var uri = "/v1/tickets?limit=3"
            var pages = 0
            while true {
                let page = try await app.request(.get, uri, key: dashboard)
                #expect(page.status == .ok)
                let body = try page.json
                let items = try #require(body["items"] as? [[String: Any]])
                seen += items.compactMap { $0["id"] as? String }
                pages += 1
                guard let next = body["next_cursor"] as? String else {
                    #expect(page.headers[HTTPField.Name("Link")!] == nil)
                    break
                }
                let link = try #require(page.headers[HTTPField.Name("Link")!])
                #expect(link.hasSuffix(#">; rel="next""#))
                #expect(link.contains("limit=3"))
                uri = String(link.dropFirst().prefix { $0 != ">" })
                #expect(uri.contains(next.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? next))
            }
            #expect(pages == 3)
            #expect(seen == created.reversed().map { $0.uuidString.lowercased() })
        }
    }

    @Test("filters by status, assignee, unassigned and customer combine")
    func filters() async throws {
        try await TestApp.run { app in
            let agent = try await app.key(.agent)
            let agentID = try #require(agent.record.agentID)
            let alice = try await app.customer(name: "Alice")
            let bob = try await app.customer(name: "Bob")
            let open = try await app.ticket(customer: alice, status: "open", assignee: agentID)
            let pending = try await app.ticket(customer: alice, status: "pending")
            let bobs = try await app.ticket(customer: bob, status: "open")

            func ids(_ query: String) async throws -> Set<String> {
                let response = try await app.request(.get, "/v1/tickets?\(query)", key: agent.secret)
                #expect(response.status == .ok, "\(query): \(response.text)")
                return Set((try response.json["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
            }
            func set(_ tickets: UUID...) -> Set<String> { Set(tickets.map { $0.uuidString.lowercased() }) }

            #expect(try await ids("status=open") == set(open, bobs))
            #expect(try await ids("status=open&status=pending") == set(open, pending, bobs))
            #expect(try await ids("assignee_id=\(agentID)") == set(open))
            #expect(try await ids("unassigned=true") == set(pending, bobs))
            #expect(try await ids("customer_id=\(alice)") == set(open, pending))
            #expect(try await ids("customer_id=\(alice)&status=pending") == set(pending))
            #expect(try await ids("customer_id=\(UUID())") == [])

            // What an agent or a dashboard narrows a view by: the number a customer quotes, queue,
            // priority, channel, category and tag, in both orders.
            try await app.execute("INSERT INTO queues (name) VALUES ('returns')")
            try await app.execute("""
                UPDATE tickets SET queue = 'returns', priority = 'urgent', category = '返品', tags = ARRAY['クレーム', 'vip'], channel = 'sms'
                WHERE id = \(pending)
                """)
            try await app.execute("UPDATE tickets SET queue = 'returns', tags = ARRAY['vip'] WHERE id = \(bobs)")
            let number = try await app.count("SELECT number FROM tickets WHERE id = \(pending)")
            #expect(try await ids("number=\(number)") == set(pending))
            #expect(try await ids("queue=returns") == set(pending, bobs))
            #expect(try await ids("priority=urgent") == set(pending))
            #expect(try await ids("priority=urgent&priority=normal") == set(open, pending, bobs))
            #expect(try await ids("channel=sms") == set(pending))
            #expect(try await ids("channel=email&channel=chat") == set(open, bobs))
            #expect(try await ids("category=%E8%BF%94%E5%93%81") == set(pending))
            #expect(try await ids("tag=%E3%82%AF%E3%83%AC%E3%83%BC%E3%83%A0") == set(pending))
            #expect(try await ids("tag=vip&queue=returns&status=open") == set(bobs))
            #expect(try await ids("tag=vip&sort=resolution_due") == Set())
            try await app.execute("UPDATE tickets SET resolution_due_at = now() + interval '1 hour' WHERE id IN (\(pending), \(bobs))")
            #expect(try await ids("tag=vip&sort=resolution_due") == set(pending, bobs))
            #expect(try await ids("tag=vip&priority=urgent&sort=resolution_due") == set(pending))
            try await app.execute("UPDATE tickets SET awaiting_reply_since = now() - interval '1 hour' WHERE id = \(bobs)")
            #expect(try await ids("queue=returns&awaiting_reply=true") == set(bobs))
            #expect(try await ids("tag=vip&sort=longest_waiting") == set(bobs))
            let refused = try await app.request(.get, "/v1/tickets?priority=asap", key: agent.secret)
            #expect(refused.status == .badRequest, "\(refused.text)")
            #expect(try await app.request(.get, "/v1/tickets?number=0", key: agent.secret).status == .badRequest)
        }
    }

    @Test("a timeline lists messages in order with their attachments, paged")
    func timeline() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let customer = try await app.customer()
            let ticket = try await app.ticket(customer: customer)
            let first = try await app.inboundMessage(ticket: ticket, customer: customer, body: "商品がまだ届きません。", at: 0)
            let second = try await app.inboundMessage(ticket: ticket, customer: customer, body: "追記：注文番号は 12345 です。", at: 10)
            let third = try await app.inboundMessage(ticket: ticket, customer: customer, body: "至急お願いします", at: 20)
            try await app.execute("""
                INSERT INTO attachments (message_id, filename, media_type, size, sha256, content)
                VALUES (\(second), '注文書.pdf', 'application/pdf', 3, sha256('abc'::bytea), 'abc'::bytea)
                """)

            let page1 = try await app.request(.get, "/v1/tickets/\(ticket)/messages?limit=2", key: agent)
            #expect(page1.status == .ok)
            let items1 = try #require(try page1.json["items"] as? [[String: Any]])
            #expect(items1.compactMap { $0["id"] as? String } == [first, second].map { $0.uuidString.lowercased() })
            let attachment = try #require((items1[1]["attachments"] as? [[String: Any]])?.first)
            #expect(attachment["filename"] as? String == "注文書.pdf")
            #expect(attachment["size"] as? Int == 3)
            #expect(attachment["sha256"] as? String == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

            let cursor = try #require(try page1.json["next_cursor"] as? String)
            let page2 = try await app.request(.get, "/v1/tickets/\(ticket)/messages?limit=2&cursor=\(cursor)", key: agent)
            let items2 = try #require(try page2.json["items"] as? [[String: Any]])
            #expect(items2.compactMap { $0["id"] as? String } == [third.uuidString.lowercased()])
            #expect(try page2.json["next_cursor"] == nil)
            // The end of a timeline is an empty page; another ticket's cursor is no end but a mistake.
            let other = try await app.ticket(customer: customer, subject: "別件")
            let lastCursor = PageCursor.encode([third.uuidString])
            let end = try await app.request(.get, "/v1/tickets/\(ticket)/messages?cursor=\(lastCursor)", key: agent)
            #expect((try end.json["items"] as? [[String: Any]])?.isEmpty == true, "\(end.text)")
            try expectProblem(try await app.request(.get, "/v1/tickets/\(other)/messages?cursor=\(lastCursor)", key: agent),
                              .badRequest, "invalid-parameter")

            #expect(try await app.request(.get, "/v1/tickets/\(UUID())/messages", key: agent).status == .notFound)
        }
    }
}
