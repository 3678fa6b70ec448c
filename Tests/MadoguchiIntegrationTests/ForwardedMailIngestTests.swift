import Foundation
import MadoguchiMail
import Testing
@testable import Madoguchi

@Suite("A customer's mail forwarded by an agent is the customer's", .timeLimit(.minutes(10)))
struct ForwardedMailIngestTests {
    static let forward = """
        こちらの対応お願いします。電話でも催促がありました。

        ---------- Forwarded message ---------
        From: 山田 花子 <hanako@example.jp>
        Date: 2026年12月1日(火) 10:00
        Subject: 返品について
        To: <owner@shop.example>


        サイズが合わないので返品したいです。
        """

    /// What the receiving MTA prepends for a mail whose From domain vouches for it.
    static let passed = "Authentication-Results: mx.shop.example; spf=pass smtp.mailfrom=shop.example; dmarc=pass header.from=shop.example\n"

    /// An agent whose own address is `owner@shop.example`.
    static func owner(_ app: TestApp) async throws -> String {
        let created = try await app.request(.post, "/v1/agents", key: try await app.keySecret(.supervisor),
                                            json: #"{"display_name":"店長","email":"Owner@Shop.Example"}"#)
        #expect(created.status == .created, "\(created.text)")
        return try #require(try created.json["id"] as? String)
    }

    @Test("""
        an agent's forward opens the ticket for the original sender with their words and subject; the agent's own \
        words are their internal note; no customer is made for the agent and no acknowledgement goes out
        """)
    func agentsForward() async throws {
        try await TestApp.run(configure: { $0.delivery.autoReplyTemplate = "受付確認" }) { app in
            let supervisor = try await app.keySecret(.supervisor)
            #expect(try await app.request(.post, "/v1/templates", key: supervisor, json: #"{"name":"受付確認","body":"受け付けました。"}"#)
                .status == .created)
            let agentID = try await Self.owner(app)
            let posted = try await app.postMail(try await app.keySecret(.gateway), testMail(
                from: "店長 <owner@shop.example>", subject: "Fwd: 返品について", id: "fwd1@shop.example", headers: Self.passed, body: Self.forward))
            #expect(posted.status == .created, "\(posted.text)")
            let answer = try posted.json
            let customer = try await app.request(.get, "/v1/customers/\(answer["customer_id"] as! String)", key: supervisor).json
            #expect(customer["display_name"] as? String == "山田 花子")
            #expect((customer["identities"] as? [[String: Any]])?.map { $0["value"] as? String } == ["hanako@example.jp"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'owner@shop.example'") == 0)

            let ticketID = try #require(answer["ticket_id"] as? String)
            let ticket = try await app.request(.get, "/v1/tickets/\(ticketID)", key: supervisor).json
            #expect(ticket["subject"] as? String == "返品について")
            let timeline = try #require(try await app.request(.get, "/v1/tickets/\(ticketID)/messages", key: supervisor).json["items"] as? [[String: Any]])
            let inbound = try #require(timeline.first { $0["direction"] as? String == "inbound" })
            #expect(inbound["from"] as? String == "hanako@example.jp")
            #expect(inbound["visible_text"] as? String == "サイズが合わないので返品したいです。")
            #expect((inbound["body_text"] as? String)?.contains("電話でも催促") == false, "the agent's words are their note, not the customer's")
            #expect(inbound["subject"] as? String == "返品について")
            #expect(NSDictionary(dictionary: inbound["forwarded_by"] as? [String: String] ?? [:]) == ["agent_id": agentID, "address": "owner@shop.example"])
            let note = try #require(timeline.first { $0["direction"] as? String == "internal" })
            #expect(note["body_text"] as? String == "こちらの対応お願いします。電話でも催促がありました。")
            #expect(note["author_agent_id"] as? String == agentID)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 0)

            // Sent again (the gateway's retry): the same message, nothing new.
            let again = try await app.postMail(try await app.keySecret(.gateway), testMail(
                from: "店長 <owner@shop.example>", subject: "Fwd: 返品について", id: "fwd1@shop.example", headers: Self.passed, body: Self.forward))
            #expect(try again.json["message_id"] as? String == answer["message_id"] as? String)
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)

            // The customer's own mail later joins their ticket, as any of theirs does.
            let own = try await app.postMail(try await app.keySecret(.gateway), testMail(
                from: "hanako@example.jp", subject: "Re: 返品について", id: "own@example.jp", body: "まだでしょうか。"))
            #expect(try own.json["ticket_id"] as? String == ticketID)
        }
    }

    @Test("""
        the same forward from a stranger, or from an agent's address without the MTA's word that its domain sent it \
        (DMARC fail, no Authentication-Results, a pass written by the sender under the MTA's none), stays the sender's
        """)
    func notBelieved() async throws {
        try await TestApp.run { app in
            _ = try await Self.owner(app)
            let gateway = try await app.keySecret(.gateway)
            let stranger = try await app.postMail(gateway, testMail(
                from: "stranger@example.com", subject: "Fwd: 返品について", id: "fwd2@example.com",
                headers: "Authentication-Results: mx.shop.example; dmarc=pass header.from=example.com\n", body: Self.forward))
            var answers = [(stranger, "stranger@example.com")]
            for (index, headers) in [
                "Authentication-Results: mx.shop.example; dmarc=fail header.from=shop.example\n",
                "",
                "Authentication-Results: mx.shop.example; spf=fail smtp.mailfrom=shop.example; dmarc=none\n"
                    + "Authentication-Results: mx.shop.example; dmarc=pass header.from=shop.example\n",
            ].enumerated() {
                let forged = try await app.postMail(gateway, testMail(
                    from: "owner@shop.example", subject: "Fwd: 返品について", id: "fwd-forged-\(index)@example.com", headers: headers, body: Self.forward))
                answers.append((forged, "owner@shop.example"))
            }
            for (answer, sender) in answers {
                #expect(answer.status == .created, "\(answer.text)")
                let customer = try await app.request(.get, "/v1/customers/\(try answer.json["customer_id"] as! String)",
                                                     key: try await app.keySecret(.supervisor)).json
                #expect((customer["identities"] as? [[String: Any]])?.map { $0["value"] as? String } == [sender])
            }
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'hanako@example.jp'") == 0)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'internal'") == 0)
        }
    }

    @Test("""
        the customer is the first sender in the forward who is neither an agent, the desk itself nor a machine: \
        a colleague's forward forwarded again, or a thread the desk had answered, is still the customer's
        """)
    func deskBlocksSkipped() async throws {
        try await TestApp.run(configure: { $0.delivery.mailFrom = MailAddress(name: nil, address: "support@shop.example") }) { app in
            _ = try await Self.owner(app)
            #expect(try await app.request(.post, "/v1/agents", key: try await app.keySecret(.supervisor),
                                          json: #"{"display_name":"同僚","email":"colleague@shop.example"}"#).status == .created)
            let gateway = try await app.keySecret(.gateway)
            let body = """
                ---------- Forwarded message ---------
                From: Shop Support <support+t9@shop.example>
                Subject: Re: 交換

                交換を承りました。

                ---------- Forwarded message ---------
                From: 同僚 <colleague@shop.example>
                Subject: Fwd: 交換

                ---------- Forwarded message ---------
                From: no-reply@marketplace.example
                Subject: 交換

                ---------- Forwarded message ---------
                From: "Tanaka, Ichiro" <ichiro@example.jp>
                Subject: 交換

                交換してください。
                """
            let posted = try await app.postMail(gateway, testMail(from: "owner@shop.example", subject: "Fwd: 交換", id: "nested@shop.example",
                                                                  headers: Self.passed, body: body))
            #expect(posted.status == .created, "\(posted.text)")
            let customer = try await app.request(.get, "/v1/customers/\(try posted.json["customer_id"] as! String)", key: try await app.keySecret(.supervisor)).json
            #expect((customer["identities"] as? [[String: Any]])?.map { $0["value"] as? String } == ["ichiro@example.jp"], "\(customer)")
            #expect(customer["display_name"] as? String == "Tanaka, Ichiro")
        }
    }
}
