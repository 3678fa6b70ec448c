import Foundation
import MadoguchiMail
import Testing
@testable import Madoguchi

@Suite("A web form's mail is its customer's, the one in its Reply-To", .timeLimit(.minutes(10)))
struct FormRelayIngestTests {
    /// As Contact Form 7 sends an inquiry: from the site's own address, the customer in Reply-To.
    static func formMail(from: String = "ショップ <wordpress@shop.example>", replyTo: String = "山田 太郎 <Taro@Example.JP>",
                         id: String, headers: String = "", body: String = "注文した商品がまだ届きません。") -> String {
        testMail(from: from, subject: "お問い合わせフォームより", id: id, headers: "Reply-To: \(replyTo)\n" + headers, body: body)
    }

    /// The receiving MTA's word that the shop's domain sent the form's mail.
    static let vouched = "Authentication-Results: mx.shop.example; spf=pass; dmarc=pass header.from=shop.example\n"

    static func configure(_ configuration: inout Configuration) {
        configuration.delivery.formMailFrom = ["wordpress@shop.example"]
        configuration.delivery.mailFrom = MailAddress(name: nil, address: "support@shop.example")
        configuration.delivery.autoReplyTemplate = "受付確認"
    }

    @Test("""
        a form's mail opens the ticket of the customer in its Reply-To, named as it names them; the message is from them, \
        relayed_by the form; the acknowledgement and the answer go to them; a retry is the same message
        """)
    func formsMail() async throws {
        try await TestApp.run(configure: Self.configure) { app in
            let supervisor = try await app.keySecret(.supervisor)
            let gateway = try await app.keySecret(.gateway)
            #expect(try await app.request(.post, "/v1/templates", key: supervisor, json: #"{"name":"受付確認","body":"受け付けました。"}"#)
                .status == .created)
            let posted = try await app.postMail(gateway, Self.formMail(id: "cf7-1@shop.example", headers: Self.vouched))
            #expect(posted.status == .created, "\(posted.text)")
            let answer = try posted.json
            let customerID = try #require(answer["customer_id"] as? String)
            let customer = try await app.request(.get, "/v1/customers/\(customerID)", key: supervisor).json
            #expect(customer["display_name"] as? String == "山田 太郎")
            #expect((customer["identities"] as? [[String: Any]])?.map { $0["value"] as? String } == ["taro@example.jp"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value LIKE 'wordpress@%'") == 0)

            let ticketID = try #require(answer["ticket_id"] as? String)
            let timeline = try #require(try await app.request(.get, "/v1/tickets/\(ticketID)/messages", key: supervisor).json["items"] as? [[String: Any]])
            let inbound = try #require(timeline.first { $0["direction"] as? String == "inbound" })
            #expect(inbound["from"] as? String == "Taro@example.jp")
            #expect(inbound["relayed_by"] as? String == "wordpress@shop.example")
            // The acknowledgement went to the customer, not back to the form.
            #expect(try await app.strings("SELECT unnest(recipients) FROM replies WHERE ticket_id = \(ticketID)::uuid") == ["taro@example.jp"])

            // The form's relay retries the same mail: one message.
            let again = try await app.postMail(gateway, Self.formMail(id: "cf7-1@shop.example", headers: Self.vouched))
            #expect(again.status == .ok, "\(again.text)")
            #expect(try again.json["message_id"] as? String == answer["message_id"] as? String)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'inbound'") == 1)

            // An agent's answer goes to the customer by default.
            let agent = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(ticketID)/claim", key: agent).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(ticketID)/replies", key: agent, json: #"{"body":"確認いたします。"}"#)
            #expect(draft.status == .created, "\(draft.text)")
            #expect((try draft.json["recipients"] as? [String]) == ["taro@example.jp"], "\(draft.text)")

            // The customer's own answer joins their ticket; the next inquiry through the form from
            // someone else is someone else's.
            let number = try await app.count("SELECT number FROM tickets WHERE id = \(ticketID)::uuid")
            let own = try await app.postMail(gateway, testMail(from: "taro@example.jp", subject: "Re: お問い合わせフォームより [#\(number)]",
                                                               id: "own@example.jp", headers: "In-Reply-To: <cf7-1@shop.example>\n", body: "よろしくお願いします。"))
            #expect(try own.json["ticket_id"] as? String == ticketID, "\(own.text)")
            let other = try await app.postMail(gateway, Self.formMail(replyTo: "hanako@example.jp", id: "cf7-2@shop.example"))
            #expect(try other.json["customer_id"] as? String != customerID)
            #expect(try other.json["ticket_id"] as? String != ticketID)
            // That one came without the MTA's word that the shop's domain sent it: filed, not acknowledged
            // (anyone can write the form's address in From and a stranger's in Reply-To).
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'reply.automatic_withheld' AND data->>'reason' LIKE '%without the MTA''s word%'
                """) == 1)
        }
    }

    @Test("""
        the support address's own mail relays its Reply-To too; not a reply of ours come back, nor a form's mail its domain \
        disowns, nor another sender's Reply-To: those are filed under their From
        """)
    func whoRelays() async throws {
        try await TestApp.run(configure: Self.configure) { app in
            let gateway = try await app.keySecret(.gateway)
            let identity = { (answer: [String: Any]) async throws -> [String] in
                try await app.strings("SELECT value FROM customer_identities WHERE customer_id = \(try #require(answer["customer_id"] as? String))::uuid")
            }
            let fromSupport = try await app.postMail(gateway, Self.formMail(from: "support@shop.example", replyTo: "jiro@example.jp", id: "own-form@shop.example"))
            #expect(try await identity(try fromSupport.json) == ["jiro@example.jp"], "\(fromSupport.text)")

            // Our own reply looped back: its Reply-To is the support address's plus form. Not relayed,
            // and no customer: the support address's own mail is none (InboundEmailTests).
            let looped = try await app.postMail(gateway, Self.formMail(from: "support@shop.example", replyTo: "support+t1@shop.example", id: "loop@shop.example"))
            let loopedAnswer = try looped.json
            #expect(looped.status == .created && loopedAnswer["customer_id"] == nil, "\(looped.text)")

            let disowned = try await app.postMail(gateway, Self.formMail(
                replyTo: "saburo@example.jp", id: "forged@shop.example",
                headers: "Authentication-Results: mx.shop.example; dmarc=fail header.from=shop.example\n"))
            #expect(try await identity(try disowned.json) == ["wordpress@shop.example"], "\(disowned.text)")

            let stranger = try await app.postMail(gateway, Self.formMail(from: "shiro@example.com", replyTo: "goro@example.jp", id: "stranger@example.com"))
            #expect(try await identity(try stranger.json) == ["shiro@example.com"], "\(stranger.text)")

            // A colleague sending as the support address with their own Reply-To is no customer.
            let colleague = try await app.postMail(gateway, Self.formMail(from: "support@shop.example", replyTo: "tanaka@shop.example", id: "sendas@shop.example"))
            let colleagueAnswer = try colleague.json
            #expect(colleague.status == .created && colleagueAnswer["customer_id"] == nil, "\(colleague.text)")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'tanaka@shop.example'") == 0)

            // A Reply-To naming only the shop's own addresses, or nothing usable, relays nobody either.
            let ownOnly = try await app.postMail(gateway, Self.formMail(replyTo: "wordpress@shop.example, support@shop.example", id: "own-only@shop.example"))
            #expect(try await identity(try ownOnly.json) == ["wordpress@shop.example"], "\(ownOnly.text)")
            // The first usable one of several.
            let several = try await app.postMail(gateway, Self.formMail(replyTo: "support@shop.example, rokuro@example.jp, nana@example.jp", id: "several@shop.example"))
            #expect(try await identity(try several.json) == ["rokuro@example.jp"], "\(several.text)")
        }
    }

    @Test("MADOGUCHI_FORM_MAIL_FROM takes addresses separated by commas and refuses anything else")
    func setting() throws {
        let read = { (value: String) throws -> [String] in
            try Configuration.fromEnvironment(["MADOGUCHI_FORM_MAIL_FROM": value]).delivery.formMailFrom
        }
        #expect(try read("wordpress@shop.example, Form <form@shop.example>,") == ["wordpress@shop.example", "form@shop.example"])
        #expect(throws: ConfigurationError.self) { try read("wordpress@shop.example, www") }
    }
}
