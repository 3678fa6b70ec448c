import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import CorpusSupport
import Testing
@testable import Madoguchi
@testable import MadoguchiBench

@Suite("Email in: the right message, on the right ticket, for the right customer", .timeLimit(.minutes(15)))
struct InboundEmailTests {
    @Test("a first mail makes a customer, a ticket and a message; the raw bytes are kept byte for byte")
    func firstMail() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let raw = testMail(from: "\"山田 花子\" <Hanako@Example.JP>", subject: "=?UTF-8?B?6L+U5ZOB44Gr44Gk44GE44Gm?=", id: "first@example.jp",
                                body: "返品したいです。\n\n-- \n山田")
            let response = try await app.postMail(gateway, raw)
            #expect(response.status == .created, "\(response.text)")
            let json = try response.json
            #expect(json["classification"] as? String == "customer")
            #expect(json["threading_reason"] as? String == "new-ticket")
            let inbound = try #require(json["inbound_id"] as? String)

            let customer = try await app.request(.get, "/v1/customers/\(json["customer_id"] as! String)", key: try await app.keySecret(.supervisor))
            #expect(try customer.json["display_name"] as? String == "山田 花子")
            let identities = try #require(try customer.json["identities"] as? [[String: Any]])
            #expect(identities.map { $0["value"] as? String } == ["hanako@example.jp"])   // one spelling per mailbox: lower-cased

            let agent = try await app.keySecret(.agent)
            let messages = try await app.request(.get, "/v1/tickets/\(json["ticket_id"] as! String)/messages", key: agent)
            let message = try #require((try messages.json["items"] as? [[String: Any]])?.first)
            #expect(message["subject"] as? String == "返品について")
            #expect(message["visible_text"] as? String == "返品したいです。")
            #expect(message["quoted_text"] as? String == "-- \n山田")
            #expect(message["email_message_id"] as? String == "first@example.jp")

            let admin = try await app.keySecret(.admin)
            let stored = try await app.client.execute(uri: "/v1/inbound/\(inbound)", method: .get,
                                                      headers: [.authorization: "Bearer \(admin)", .accept: "message/rfc822"])
            #expect(stored.status == .ok)
            #expect(Array(buffer: stored.body) == Array(raw.replacingOccurrences(of: "\n", with: "\r\n").utf8))
            let bytes = try await app.client.execute(uri: "/v1/inbound/\(inbound)", method: .get,
                                                     headers: [.authorization: "Bearer \(admin)", .accept: "application/octet-stream"])
            #expect(bytes.headers[.contentType] == "application/octet-stream")
            #expect(Array(buffer: bytes.body) == Array(buffer: stored.body))
            let metadata = try await app.request(.get, "/v1/inbound/\(inbound)", key: admin)
            #expect(try metadata.json["parse_status"] as? String == "parsed")
            #expect((try metadata.json["outcome"] as? [String: Any])?["message_id"] as? String == json["message_id"] as? String)
        }
    }

    @Test("every attachment of a mail is stored in order with its own size, hash, Content-ID and inline flag; a mail without any stores none")
    func attachments() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let mail = """
                From: hanako@example.jp
                To: support@shop.example
                Subject: =?UTF-8?B?5rOo5paH5pu4?=
                Message-ID: <files@example.jp>
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary="b"

                --b
                Content-Type: text/plain; charset=UTF-8

                注文書を添付します。
                --b
                Content-Type: application/pdf; name="order.pdf"
                Content-Disposition: attachment; filename*=UTF-8''%E6%B3%A8%E6%96%87%E6%9B%B8.pdf
                Content-Transfer-Encoding: base64

                YWJj
                --b
                Content-Type: image/png
                Content-Disposition: inline; filename="logo.png"
                Content-ID: <logo@example.jp>
                Content-Transfer-Encoding: base64

                iVBORw0KGgo=
                --b
                Content-Type: text/csv; name="items.csv"
                Content-Disposition: attachment; filename="items.csv"

                sku,qty
                A-1,2
                --b--

                """
            let response = try await app.postMail(gateway, mail)
            #expect(response.status == .created, "\(response.text)")
            let messageID = try #require(try response.json["message_id"] as? String)
            let message = try #require(UUID(uuidString: messageID))
            let rows = try await app.strings("""
                SELECT concat_ws('|', position, filename, media_type, size, encode(sha256, 'hex') = encode(sha256(content), 'hex'),
                                 coalesce(content_id, '(none)'), inline)
                FROM attachments WHERE message_id = \(message) ORDER BY position
                """)
            #expect(rows == [
                "0|注文書.pdf|application/pdf|3|t|(none)|f",
                "1|logo.png|image/png|8|t|logo@example.jp|t",
                "2|items.csv|text/csv|14|t|(none)|f",
            ])
            #expect(try await app.strings("SELECT convert_from(content, 'UTF8') FROM attachments WHERE message_id = \(message) AND position IN (0, 2) ORDER BY position")
                    == ["abc", "sku,qty\r\nA-1,2"])

            let plain = try await app.postMail(gateway, testMail(subject: "no files", id: "nofiles@example.jp"))
            let plainID = try #require(try plain.json["message_id"] as? String)
            let plainMessage = try #require(UUID(uuidString: plainID))
            #expect(try await app.count("SELECT count(*) FROM attachments WHERE message_id = \(plainMessage)") == 0)
        }
    }

    @Test("a gateway reads back only the raw payloads it posted; another gateway's are not found; a supervisor reads all")
    func gatewaysReadTheirOwn() async throws {
        try await TestApp.run { app in
            let (poster, other) = (try await app.keySecret(.gateway), try await app.keySecret(.gateway))
            let posted = try await app.postMail(poster, testMail(subject: "在庫", id: "own@example.jp"))
            let inbound = try #require(try posted.json["inbound_id"] as? String)
            func read(_ key: String, raw: Bool) async throws -> TestClient.Response {
                try await app.request(.get, "/v1/inbound/\(inbound)", key: key, headers: raw ? [.accept: "message/rfc822"] : [:])
            }
            for raw in [false, true] {
                #expect(try await read(poster, raw: raw).status == .ok)
                try expectProblem(try await read(other, raw: raw), .notFound, "not-found")
                #expect(try await read(try await app.keySecret(.supervisor), raw: raw).status == .ok)
            }
        }
    }

    @Test("retries: the same Message-ID is one message; the same Idempotency-Key replays, or is 422 with other bytes")
    func idempotency() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let raw = testMail(subject: "在庫", id: "retry@example.jp")
            let first = try await app.postMail(gateway, raw)
            #expect(first.status == .created)
            let again = try await app.postMail(gateway, "Received: from relay\n" + raw)
            #expect(again.status == .ok)
            #expect(try again.json["message_id"] as? String == (try first.json["message_id"] as? String))
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 2)   // the retry's bytes are kept too

            let keyed = testMail(subject: "別件", id: "keyed@example.jp")
            let withKey = try await app.postMail(gateway, keyed, idempotencyKey: "mail-42")
            #expect(withKey.status == .created)
            let replay = try await app.postMail(gateway, keyed, idempotencyKey: "mail-42")
            #expect(replay.status == .ok)
            #expect(replay.text == withKey.text)
            try expectProblem(
                try await app.postMail(gateway, testMail(subject: "違う", id: "other@example.jp"), idempotencyKey: "mail-42"),
                .unprocessableContent, "idempotency-key-reused")
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
            try expectProblem(try await app.postMail(gateway, keyed, idempotencyKey: "has space"), .badRequest, "invalid-parameter")
        }
    }

    @Test("the same Message-ID from another sender is another mail, never swallowed as a retry; its own retry is one message")
    func messageIDCollision() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let taro = try await app.postMail(gateway, testMail(from: "taro@example.jp", subject: "在庫", id: "1234@localhost"))
            #expect(taro.status == .created)
            let hanakoMail = testMail(from: "hanako@other.jp", subject: "返品", id: "1234@localhost", body: "返品したいです。")
            let hanako = try await app.postMail(gateway, hanakoMail)
            #expect(hanako.status == .created, "\(hanako.text)")
            #expect(try hanako.json["message_id"] as? String != (try taro.json["message_id"] as? String))
            #expect(try hanako.json["customer_id"] as? String != (try taro.json["customer_id"] as? String))
            let retried = try await app.postMail(gateway, "Received: from relay\n" + hanakoMail)
            #expect(retried.status == .ok)
            #expect(try retried.json["message_id"] as? String == (try hanako.json["message_id"] as? String))
            let sameSender = try await app.postMail(gateway, testMail(from: "TARO@example.jp", subject: "在庫", id: "1234@localhost"))
            #expect(sameSender.status == .ok, "the same sender is a retry")
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text LIKE '返品したいです。%'") == 1)
        }
    }

    @Test("a mail without a Message-ID, retried through another relay (a Received line more, CRLF line ends), is one message; another body is another")
    func withoutMessageID() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let mail = "From: taro@example.jp\nTo: support@shop.example\nSubject: 在庫\nDate: Sat, 5 Dec 2026 10:00:00 +0900\n"
                + "Content-Type: text/plain; charset=UTF-8\n\n在庫はありますか。\n"
            let first = try await app.postMail(gateway, "Received: from mx1.example.jp\n" + mail)
            #expect(first.status == .created, "\(first.text)")
            let relayed = ("Received: from mx2.example.jp\nReceived: from relay\nX-Spam-Score: 0.1\n" + mail).replacingOccurrences(of: "\n", with: "\r\n")
            let again = try await app.postMail(gateway, relayed)
            #expect(again.status == .ok, "\(again.text)")
            #expect(try again.json["message_id"] as? String == (try first.json["message_id"] as? String))
            let other = try await app.postMail(gateway, mail.replacingOccurrences(of: "在庫はありますか。", with: "入荷はいつですか。"))
            #expect(other.status == .created)
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
        }
    }

    @Test("RFC 5322 Appendix A: example05 → 06 → 07 is one ticket, threaded by In-Reply-To")
    func appendixAThread() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            var tickets: Set<String> = []
            var reasons: [String] = []
            for name in ["example05", "example06", "example07"] {
                let bytes = try [UInt8](Data(contentsOf: try Corpus.directory.appendingPathComponent("mikel-mail/rfc2822/\(name).eml")))
                let response = try await app.postMail(gateway, bytes)
                #expect(response.status == .created, "\(name): \(response.text)")
                tickets.insert(try response.json["ticket_id"] as! String)
                reasons.append(try response.json["threading_reason"] as! String)
            }
            #expect(tickets.count == 1)
            #expect(reasons == ["new-ticket", "in-reply-to", "in-reply-to"])
        }
    }

    @Test("a ticket token threads the customer's own mail; another customer quoting it gets a new, linked ticket, which never takes the first customer's later mail")
    func tokens() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.postMail(gateway, testMail(subject: "注文番号 1001", id: "t1@example.jp"))
            let number = try #require(try first.json["ticket_number"] as? Int)
            let ticket = try first.json["ticket_id"] as! String

            let own = try await app.postMail(gateway, testMail(subject: "Re: [#\(number)] 注文番号 1001", id: "t2@example.jp"))
            #expect(try own.json["ticket_id"] as? String == ticket)
            #expect(try own.json["threading_reason"] as? String == "ticket-token")
            let byAddress = try await app.postMail(gateway, testMail(to: "support+t\(number)@shop.example", subject: "追加の質問", id: "t3@example.jp"))
            #expect(try byAddress.json["ticket_id"] as? String == ticket)

            let stranger = try await app.postMail(gateway, testMail(from: "other@example.com", subject: "Re: [#\(number)] 注文番号 1001", id: "t4@example.com"))
            #expect(try stranger.json["threading_reason"] as? String == "token-foreign-sender")
            let strangerTicket = try #require(try stranger.json["ticket_id"] as? String)
            #expect(strangerTicket != ticket)
            let related = try await app.request(.get, "/v1/tickets/\(strangerTicket)", key: try await app.keySecret(.agent))
            #expect(try related.json["related_ticket_id"] as? String == ticket)

            // The first ticket closed, its customer writes in its thread again: a follow-up of their
            // own, never the stranger's linked ticket (their mail would be answered to the stranger).
            try await app.execute("UPDATE tickets SET status = 'closed' WHERE id = \(UUID(uuidString: ticket)!)")
            let again = try await app.postMail(gateway, testMail(subject: "Re: [#\(number)] 注文番号 1001", id: "t5@example.jp"))
            #expect(again.status == .created, "\(again.text)")
            let againTicket = try #require(try again.json["ticket_id"] as? String)
            #expect(againTicket != strangerTicket, "\(again.text)")
            #expect(againTicket != ticket)
            #expect(try again.json["threading_reason"] as? String == "reopened-closed", "\(again.text)")
        }
    }

    @Test("a Message-ID two senders used: a reply naming it joins the replier's own conversation; the support address's own mail is a note on the ticket it names, never a customer; under an id whose first mail made no message, other mails are taken in")
    func reusedMessageIDs() async throws {
        // The support address is the one replies are sent from (nothing is sent here).
        try await TestApp.run(configure: { $0.delivery.mailFrom = DeliveryTests.support }) { app in
            let gateway = try await app.keySecret(.gateway)
            let sora = try await app.postMail(gateway, testMail(from: "sora@example.jp", subject: "ギフト包装", id: "20261207.0001@mailer.example"))
            let riku = try await app.postMail(gateway, testMail(from: "riku@example.jp", subject: "ギフト包装", id: "20261207.0001@mailer.example"))
            let soraTicket = try #require(try sora.json["ticket_id"] as? String)
            let rikuTicket = try #require(try riku.json["ticket_id"] as? String)
            #expect(soraTicket != rikuTicket, "\(riku.text)")
            for (sender, ticket) in [("riku@example.jp", rikuTicket), ("sora@example.jp", soraTicket)] {
                let answer = try await app.postMail(gateway, testMail(
                    from: sender, subject: "Re: ギフト包装", id: "re-\(sender)", headers: "In-Reply-To: <20261207.0001@mailer.example>\n"))
                #expect(try answer.json["ticket_id"] as? String == ticket, "\(sender): \(answer.text)")
                #expect(try answer.json["threading_reason"] as? String == "in-reply-to", "\(sender): \(answer.text)")
            }

            // A colleague answers Yuki from a mail program as the support address, copying it: that
            // mail is no customer message on Yuki's ticket, nor a customer of its own, nor a ticket
            // in the queue: a note by the desk on Yuki's ticket, saying what was sent.
            let yuki = try await app.postMail(gateway, testMail(from: "yuki@example.org", subject: "サイズ交換", id: "c1@example.org"))
            let yukiTicket = try #require(try yuki.json["ticket_id"] as? String)
            let tickets = try await app.count("SELECT count(*) FROM tickets")
            // With the receiving MTA's word that our domain sent it, as an agent's forward needs.
            let vouched = "Authentication-Results: mx.shop.example; spf=pass; dmarc=pass header.from=shop.example\n"
            let own = try await app.postMail(gateway, testMail(
                from: "support@shop.example", to: "yuki@example.org", subject: "Re: サイズ交換", id: "staff-1@shop.example",
                headers: vouched + "Cc: support@shop.example\nIn-Reply-To: <c1@example.org>\n", body: "交換品を本日お送りしました。"))
            #expect(own.status == .created, "\(own.text)")
            let ownAnswer = try own.json
            #expect(ownAnswer["ticket_id"] as? String == yukiTicket && ownAnswer["message_id"] != nil, "the note: \(own.text)")
            #expect(try own.json["threading_reason"] as? String == "support-address-note", "\(own.text)")
            #expect(try await app.count("SELECT count(*) FROM tickets") == tickets)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value LIKE 'support%'") == 0)
            #expect(try await app.count("""
                SELECT count(*) FROM messages WHERE ticket_id = \(yukiTicket)::uuid AND direction = 'internal'
                  AND author_agent_id = \(AutomaticReply.agentID) AND body_text LIKE '%交換品を本日お送りしました。%'
                """) == 1)
            // Sent again through another MX (another trace field), the same mail is a retry: no second
            // note. Naming no ticket, it is kept, nothing more.
            let ownAgain = try await app.postMail(gateway, testMail(
                from: "support@shop.example", to: "yuki@example.org", subject: "Re: サイズ交換", id: "staff-1@shop.example",
                headers: "Received: from mx2.shop.example\n" + vouched + "Cc: support@shop.example\nIn-Reply-To: <c1@example.org>\n",
                body: "交換品を本日お送りしました。"))
            #expect(try ownAgain.json["message_id"] as? String == ownAnswer["message_id"] as? String, "\(ownAgain.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'internal'") == 1)
            // Without that word it is anyone's: a forged one naming Yuki's ticket writes no note in our name.
            let number = try await app.count("SELECT number FROM tickets WHERE id = \(yukiTicket)::uuid")
            let forged = try await app.postMail(gateway, testMail(from: "support@shop.example", subject: "[#\(number)] 返金処理済み", id: "forged@evil.example",
                                                                  body: "追加対応不要です。"))
            let forgedAnswer = try forged.json
            #expect(forged.status == .created && forgedAnswer["ticket_id"] == nil, "\(forged.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'internal'") == 1)
            let test = try await app.postMail(gateway, testMail(from: "Support <support@shop.example>", subject: "テスト送信", id: "test-1@shop.example"))
            let testAnswer = try test.json
            #expect(test.status == .created && testAnswer["ticket_id"] == nil, "\(test.text)")
            #expect(try await app.count("SELECT count(*) FROM tickets") == tickets)

            // The first mail under an id made no message (an auto-reply answering nothing): customers'
            // questions under the same id are taken in, each once; the auto-reply's retry stays a retry.
            let auto = testMail(from: "ken@example.jp", subject: "自動応答", id: "1@localhost.localdomain", headers: "Auto-Submitted: auto-replied\n")
            let first = try await app.postMail(gateway, auto)
            #expect(try first.json["message_id"] == nil, "\(first.text)")
            let messages = try await app.count("SELECT count(*) FROM messages")
            let mika = testMail(from: "mika@example.jp", subject: "在庫について", id: "1@localhost.localdomain")
            for _ in 0..<2 {
                let taken = try await app.postMail(gateway, mika)
                #expect(try taken.json["classification"] as? String == "customer", "\(taken.text)")
            }
            let jiro = try await app.postMail(gateway, testMail(from: "jiro@example.jp", subject: "配送について", id: "1@localhost.localdomain"))
            #expect(try jiro.json["classification"] as? String == "customer", "\(jiro.text)")
            #expect(try await app.count("SELECT count(*) FROM messages") == messages + 2)
            let again = try await app.postMail(gateway, auto)
            #expect(try again.json["inbound_id"] as? String == (try first.json["inbound_id"] as? String), "\(again.text)")
            #expect(try await app.count("SELECT count(*) FROM messages") == messages + 2)
        }
    }

    @Test("carrier mail without thread headers joins by subject; a solved ticket reopens, a closed one starts a linked ticket")
    func carrierSubjectThreading() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let from = "taro..yamada.@docomo.ne.jp"
            let first = try await app.postMail(gateway, testMail(from: from, subject: "商品について", id: "c1@docomo.ne.jp"))
            let ticket = try first.json["ticket_id"] as! String
            try await app.execute("UPDATE tickets SET status = 'solved' WHERE id = \(UUID(uuidString: ticket)!)")

            let second = try await app.postMail(gateway, testMail(from: from, subject: "Re：商品について", id: "c2@docomo.ne.jp"))
            #expect(try second.json["ticket_id"] as? String == ticket)
            #expect(try second.json["threading_reason"] as? String == "subject")
            #expect(try second.json["ticket_status"] as? String == "open")

            try await app.execute("UPDATE tickets SET status = 'closed' WHERE id = \(UUID(uuidString: ticket)!)")
            let third = try await app.postMail(gateway, testMail(from: from, subject: "Re: Re: 商品について", id: "c3@docomo.ne.jp",
                                                                    headers: "In-Reply-To: <c1@docomo.ne.jp>\n"))
            #expect(try third.json["threading_reason"] as? String == "reopened-closed")
            let newTicket = try #require(try third.json["ticket_id"] as? String)
            #expect(newTicket != ticket)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE related_ticket_id = \(UUID(uuidString: ticket)!)") == 1)
        }
    }

    @Test("an auto-reply is stored on its ticket but reopens nothing; one that answers no ticket makes nothing")
    func autoReplies() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.postMail(gateway, testMail(subject: "問い合わせ", id: "a1@example.jp"))
            let ticket = try first.json["ticket_id"] as! String
            try await app.execute("UPDATE tickets SET status = 'pending' WHERE id = \(UUID(uuidString: ticket)!)")
            let vacation = try await app.postMail(gateway, testMail(subject: "自動応答: 不在のお知らせ", id: "a2@example.jp",
                                                                       headers: "Auto-Submitted: auto-replied\nIn-Reply-To: <a1@example.jp>\n"))
            #expect(try vacation.json["classification"] as? String == "auto_reply")
            #expect(try vacation.json["ticket_id"] as? String == ticket)
            #expect(try vacation.json["ticket_status"] as? String == "pending")
            // Nor does it move the clocks: the customer's last message is still the first one.
            let ticketID = UUID(uuidString: ticket)!
            #expect(try await app.count("""
                SELECT count(*) FROM tickets WHERE id = \(ticketID) AND last_customer_message_at = created_at
                """) == 1)
            // The customer writing again reopens it and moves the clock, in the statement that locks it.
            let again = try await app.postMail(gateway, testMail(subject: "Re: 問い合わせ", id: "a4@example.jp", headers: "In-Reply-To: <a1@example.jp>\n"))
            #expect(try again.json["ticket_id"] as? String == ticket)
            #expect(try again.json["ticket_status"] as? String == "open")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(ticketID) AND last_customer_message_at > created_at") == 1)
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'ticket.reopened' AND ticket_id = \(ticketID)
                  AND data->>'from' = 'pending' AND data->>'to' = 'open'
                """) == 1)

            let stray = try await app.postMail(gateway, testMail(from: "nobody@example.org", subject: "Out of Office", id: "a3@example.org",
                                                                    headers: "Auto-Submitted: auto-replied\n"))
            #expect(stray.status == .created)
            #expect(try stray.json["message_id"] == nil)
            #expect(try await app.count("SELECT count(*) FROM customers") == 1)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 1)
        }
    }

    @Test("a bounce joins the ticket of the mail it reports on and marks the address undeliverable; it never opens a ticket")
    func bounces() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.key(.agent)
            let first = try await app.postMail(gateway, testMail(from: "gone@docomo.ne.jp", subject: "質問", id: "b1@docomo.ne.jp"))
            let ticket = UUID(uuidString: try first.json["ticket_id"] as! String)!
            try await app.execute("""
                INSERT INTO messages (ticket_id, direction, channel, author_agent_id, to_addresses, body_text, email_message_id)
                VALUES (\(ticket), 'outbound', 'email', \(agent.record.agentID!), '{gone@docomo.ne.jp}', '回答です', 'reply-b@madoguchi')
                """)
            let bounce = """
                From: MAILER-DAEMON@mx.shop.example
                To: support@shop.example
                Subject: Undelivered Mail Returned to Sender
                Message-ID: <bounce-1@mx.shop.example>
                Content-Type: multipart/report; report-type=delivery-status; boundary=b

                --b
                Content-Type: text/plain

                Your message could not be delivered.
                --b
                Content-Type: message/delivery-status

                Reporting-MTA: dns; mx.shop.example

                Final-Recipient: rfc822; gone@docomo.ne.jp
                Action: failed
                Status: 5.1.1
                Diagnostic-Code: smtp; 550 Unknown user

                --b
                Content-Type: text/rfc822-headers

                Message-ID: <reply-b@madoguchi>
                To: gone@docomo.ne.jp
                --b--
                """
            let response = try await app.postMail(gateway, bounce)
            #expect(response.status == .created, "\(response.text)")
            #expect(try response.json["classification"] as? String == "bounce")
            #expect(try response.json["threading_reason"] as? String == "bounce-message-id")
            #expect(try response.json["ticket_id"] as? String == ticket.uuidString.lowercased())
            let recipients = try #require(try response.json["bounced_recipients"] as? [[String: Any]])
            #expect(recipients.first?["hard"] as? Bool == true)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE undeliverable_at IS NOT NULL") == 1)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 1)
            #expect(try await app.count("SELECT count(*) FROM customers") == 1)   // MAILER-DAEMON is nobody's customer

            let orphan = try await app.postMail(gateway, bounce.replacingOccurrences(of: "gone@docomo.ne.jp", with: "unknown@example.net")
                .replacingOccurrences(of: "reply-b@madoguchi", with: "elsewhere@example.net").replacingOccurrences(of: "bounce-1@", with: "bounce-2@"))
            #expect(orphan.status == .created)
            #expect(try orphan.json["ticket_id"] == nil)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 1)

            // A NUL in the report's fields (PostgreSQL text cannot hold one) is dropped, not a 500 the
            // relay would retry for days: the bounce is taken in and still finds the reply it reports on.
            let withNUL = try await app.postMail(gateway, bounce.replacingOccurrences(of: "Action: failed", with: "Action: failed\u{0}")
                .replacingOccurrences(of: "Status: 5.1.1", with: "Status: 5.1.1\u{0}")
                .replacingOccurrences(of: "<reply-b@madoguchi>", with: "<reply-b@madoguchi\u{0}>").replacingOccurrences(of: "bounce-1@", with: "bounce-3@"))
            #expect(withNUL.status == .created, "\(withNUL.text)")
            #expect(try withNUL.json["ticket_id"] as? String == ticket.uuidString.lowercased())
            #expect((try withNUL.json["bounced_recipients"] as? [[String: Any]])?.first?["action"] as? String == "failed")

            // Anyone can send a report naming any address. One about a customer we never wrote to,
            // or about a mail that is not ours (backscatter from spam forging our address), or an old
            // one naming no mail at all, marks nothing and joins no customer's ticket.
            let quiet = try await app.postMail(gateway, testMail(from: "quiet@example.jp", subject: "はじめまして", id: "q1@example.jp"))
            let quietTicket = UUID(uuidString: try quiet.json["ticket_id"] as! String)!
            let forged = try await app.postMail(gateway, bounce.replacingOccurrences(of: "gone@docomo.ne.jp", with: "quiet@example.jp")
                .replacingOccurrences(of: "Message-ID: <reply-b@madoguchi>\n", with: "").replacingOccurrences(of: "bounce-1@", with: "bounce-4@"))
            #expect(forged.status == .created, "\(forged.text)")
            #expect(try forged.json["ticket_id"] == nil, "\(forged.text)")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'quiet@example.jp' AND undeliverable_at IS NULL") == 1)
            try await app.execute("""
                INSERT INTO messages (ticket_id, direction, channel, author_agent_id, to_addresses, body_text, email_message_id)
                VALUES (\(quietTicket), 'outbound', 'email', \(agent.record.agentID!), '{quiet@example.jp}', '回答です', 'reply-q@madoguchi')
                """)
            // A report on our mail to someone else names this address in vain.
            let elsewhere = try await app.postMail(gateway, bounce.replacingOccurrences(of: "Final-Recipient: rfc822; gone@docomo.ne.jp", with: "Final-Recipient: rfc822; quiet@example.jp")
                .replacingOccurrences(of: "bounce-1@", with: "bounce-5@"))
            #expect(elsewhere.status == .created)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'quiet@example.jp' AND undeliverable_at IS NULL") == 1)
            try await app.execute("UPDATE messages SET created_at = now() - interval '30 days' WHERE email_message_id = 'reply-q@madoguchi'")
            // Backscatter: a report on a mail that is not ours (spam forging our address), about an
            // address we have not written to lately.
            _ = try await app.postMail(gateway, bounce.replacingOccurrences(of: "gone@docomo.ne.jp", with: "quiet@example.jp")
                .replacingOccurrences(of: "reply-b@madoguchi", with: "spam-1@shop.example").replacingOccurrences(of: "bounce-1@", with: "bounce-8@"))
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'quiet@example.jp' AND undeliverable_at IS NULL") == 1)
            _ = try await app.postMail(gateway, bounce.replacingOccurrences(of: "gone@docomo.ne.jp", with: "quiet@example.jp")
                .replacingOccurrences(of: "Message-ID: <reply-b@madoguchi>\n", with: "").replacingOccurrences(of: "bounce-1@", with: "bounce-6@"))
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'quiet@example.jp' AND undeliverable_at IS NULL") == 1)
            // Mailed lately, the address is marked by a report that quotes no headers, as carriers' do,
            // and names it in another spelling (a capital a phone keyboard added).
            try await app.execute("UPDATE messages SET created_at = now() - interval '1 day' WHERE email_message_id = 'reply-q@madoguchi'")
            let carrier = try await app.postMail(gateway, bounce.replacingOccurrences(of: "gone@docomo.ne.jp", with: "Quiet@Example.jp")
                .replacingOccurrences(of: "Message-ID: <reply-b@madoguchi>\n", with: "").replacingOccurrences(of: "bounce-1@", with: "bounce-7@"))
            #expect(try carrier.json["ticket_id"] as? String == quietTicket.uuidString.lowercased(), "\(carrier.text)")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'quiet@example.jp' AND undeliverable_at IS NOT NULL") == 1)
        }
    }

    @Test("priority rules apply to a ticket opened by mail")
    func rulesAtIngest() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let rule = try await app.request(.post, "/v1/rules", key: supervisor, json: #"{"name":"返金","priority":"urgent","keywords":["返金"]}"#)
            #expect(rule.status == .created, "\(rule.text)")
            let response = try await app.postMail(try await app.keySecret(.gateway), testMail(subject: "至急", id: "r1@example.jp", body: "返金してください"))
            let ticket = try await app.request(.get, "/v1/tickets/\(try response.json["ticket_id"] as! String)", key: supervisor)
            #expect(try ticket.json["priority"] as? String == "urgent")
        }
    }

    @Test("50 first mails at once from one new address make one customer; 20 posts of one mail make one message and one ticket")
    func concurrency() async throws {
        try await TestApp.run(configure: { $0.databasePoolSize = 20 }) { app in
            let gateway = try await app.keySecret(.gateway)
            let headers: HTTPFields = [.authorization: "Bearer \(gateway)", .contentType: "message/rfc822"]
            let statuses = try await app.postConcurrently("/v1/inbound/email", headers: headers, bodies: (0..<50).map { index in
                ByteBuffer(string: testMail(from: "new@example.jp", subject: "件名 \(index)", id: "n\(index)@example.jp").replacingOccurrences(of: "\n", with: "\r\n"))
            })
            #expect(statuses.allSatisfy { $0 == .created }, "\(statuses)")
            #expect(try await app.count("SELECT count(*) FROM customers") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities") == 1)

            let same = testMail(from: "dup@example.jp", subject: "同じメール", id: "same@example.jp").replacingOccurrences(of: "\n", with: "\r\n")
            let duplicates = try await app.postConcurrently("/v1/inbound/email", headers: headers,
                                                            bodies: Array(repeating: ByteBuffer(string: same), count: 20))
            #expect(duplicates.filter { $0 == .created }.count == 1, "\(duplicates)")
            #expect(duplicates.filter { $0 == .ok }.count == 19, "\(duplicates)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE email_message_id = 'same@example.jp'") == 1)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE subject = '同じメール'") == 1)
        }
    }
}

@Suite("madoguchi mailgate: the MTA's side of the email gateway", .timeLimit(.minutes(15)))
struct MailGateTests {
    @Test("delivers, answers a retry with 0; a refused key and an unreachable service are 75, so the MTA keeps the mail queued")
    func exitCodes() async throws {
        try await TestApp.run { app in
            let port = try #require(app.client.port)
            let endpoint = URL(string: "http://127.0.0.1:\(port)/v1/inbound/email")!
            var gate = MailGate(endpoint: endpoint, apiKey: try await app.keySecret(.gateway))
            gate.initialBackoff = .milliseconds(10)
            let mail = Array(testMail(subject: "パイプ経由", id: "pipe@example.jp").utf8)

            #expect(await gate.deliver(mail).code == .delivered)
            #expect(await gate.deliver(mail).code == .delivered)   // the MTA retrying after a lost answer
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
            #expect(await gate.deliver([]).code == .dataError)

            // Exim's pipe and procmail put an mbox envelope line first, dated anew on each retry: a
            // mail without a Message-ID, retried, is still one message, stored without the line.
            let undated = "From: hanako@example.jp\nTo: support@shop.example\nSubject: 日付なし\n\n届きません\n"
            #expect(await gate.deliver(Array(("From hanako@example.jp Mon Dec  7 10:00:00 2026\n" + undated).utf8)).code == .delivered)
            #expect(await gate.deliver(Array(("From hanako@example.jp Mon Dec  7 10:05:00 2026\n" + undated).utf8)).code == .delivered)
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE position('From hanako'::bytea in body) = 1") == 0)
            #expect(await gate.deliver(Array("From nobody Mon Dec  7 10:00:00 2026".utf8)).code == .dataError)

            var wrongKey = gate
            wrongKey.apiKey = "mdg_00000000_00000000000000000000000000000000"
            wrongKey.attempts = 1
            // Postfix bounces on 77: a rotated key would have bounced every customer mail.
            let refused = await wrongKey.deliver(mail)
            #expect(refused.code == .tempFail, "\(refused.message)")
            #expect(refused.message.contains("key was refused"))

            var unreachable = gate
            unreachable.endpoint = URL(string: "http://127.0.0.1:\(try LoopbackHTTPClient.freePort())/v1/inbound/email")!
            unreachable.attempts = 2
            let result = await unreachable.deliver(mail)
            #expect(result.code == .tempFail, "\(result.message)")
        }
    }
}

@Suite("Email in: bad input gets a clear outcome and leaves nothing half-written", .timeLimit(.minutes(15)))
struct InboundEmailBadInputTests {
    static func counts(_ app: TestApp) async throws -> [Int] {
        var counts: [Int] = []
        for table in ["customers", "tickets", "messages", "attachments"] {
            counts.append(try await app.count(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)")))
        }
        return counts
    }

    @Test("empty, whitespace and not-a-mail bodies are stored and answered 202 failed; reprocess says so again")
    func unreadable() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            for body in ["", "\r\n\r\n", "this is not a mail\njust words"] {
                let response = try await app.postMail(gateway, Array(body.utf8))
                #expect(response.status == .accepted, "\(body.debugDescription): \(response.text)")
                #expect(try response.json["parse_status"] as? String == "failed")
                #expect(try (response.json["parse_error"] as? String)?.isEmpty == false)
            }
            #expect(try await Self.counts(app) == [0, 0, 0, 0])
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'failed'") == 3)

            let failed = try await app.database.withConnection { connection -> UUID in
                let rows = try await connection.query("SELECT id FROM inbound_payloads WHERE length(body) > 10", logger: TestCluster.logger)
                for try await id in rows.decode(UUID.self) { return id }
                throw EmbeddedPostgresError("no payload")
            }
            let supervisor = try await app.keySecret(.supervisor)
            let again = try await app.request(.post, "/v1/inbound/\(failed)/reprocess", key: supervisor)
            #expect(again.status == .accepted)
            // A fix to the stored bytes (here, by hand) lets reprocessing take it in.
            try await app.execute("UPDATE inbound_payloads SET body = convert_to('From: a@example.jp' || chr(10) || chr(10) || 'hello', 'UTF8') WHERE id = \(failed)")
            let fixed = try await app.request(.post, "/v1/inbound/\(failed)/reprocess", key: supervisor)
            #expect(fixed.status == .created, "\(fixed.text)")
            let replay = try await app.request(.post, "/v1/inbound/\(failed)/reprocess", key: supervisor)
            #expect(replay.status == .ok)
            #expect(try await Self.counts(app) == [1, 1, 1, 0])
        }
    }

    @Test("over the size limit is 413 before anything is stored; another media type is 415")
    func limits() async throws {
        try await TestApp.run(configure: { $0.maxEmailBytes = 1_000_000 }) { app in
            let gateway = try await app.keySecret(.gateway)
            let big = Array(testMail(subject: "big", id: "big@example.jp").utf8) + [UInt8](repeating: 0x41, count: 1_100_000)
            try expectProblem(try await app.postMail(gateway, big), .contentTooLarge, "payload-too-large")
            let json = try await app.client.execute(uri: "/v1/inbound/email", method: .post,
                                                    headers: [.authorization: "Bearer \(gateway)", .contentType: "application/json"], body: ByteBuffer(string: "{}"))
            try expectProblem(json, .unsupportedMediaType, "unsupported-media-type")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
        }
    }

    @Test("26 MB is refused at the default limit")
    func defaultLimit() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let body = Array(testMail(subject: "huge", id: "huge@example.jp").utf8) + [UInt8](repeating: 0x41, count: 26_000_000)
            try expectProblem(try await app.postMail(gateway, body), .contentTooLarge, "payload-too-large")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
        }
    }

    @Test("NUL bytes, a 1 MB header line, 10,000 nested multiparts and 5 MB of base64 garbage just under the limit are each taken in; just over it is 413")
    func hostileMail() async throws {
        // A 6 MB limit, so the garbage mail sits just under it and one a little larger just over it.
        try await TestApp.run(configure: { $0.maxEmailBytes = 6_000_000 }) { app in
            let gateway = try await app.keySecret(.gateway)

            let nul = Array("From: nul@example.jp\r\nSubject: a\u{0}b\r\nMessage-ID: <nul@example.jp>\r\n\r\nbody\u{0}with NUL\r\n".utf8)
            let nulResponse = try await app.postMail(gateway, nul)
            #expect(nulResponse.status == .created, "\(nulResponse.text)")

            let longLine = "From: long@example.jp\r\nMessage-ID: <long@example.jp>\r\nSubject: " + String(repeating: "あ", count: 350_000) + "\r\n\r\nbody\r\n"
            let longResponse = try await app.postMail(gateway, Array(longLine.utf8))
            #expect(longResponse.status == .created, "\(longResponse.text)")

            var nested = "From: deep@example.jp\r\nMessage-ID: <deep@example.jp>\r\n"
            for level in 0..<10_000 { nested += "Content-Type: multipart/mixed; boundary=b\(level)\r\n\r\n--b\(level)\r\n" }
            nested += "Content-Type: text/plain\r\n\r\ndeep\r\n"
            let deepResponse = try await app.postMail(gateway, Array(nested.utf8))
            #expect(deepResponse.status == .created, "\(deepResponse.text)")
            #expect(try (deepResponse.json["defects"] as? [String])?.isEmpty == false)

            var garbage = Array("From: garbage@example.jp\r\nMessage-ID: <garbage@example.jp>\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--x\r\nContent-Type: application/octet-stream; name=junk.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n".utf8)
            // Base64 letters mixed with bytes outside the alphabet, 5 MB of it.
            let junk = Array("QUJD!@#ZGVm\u{7F}*&^%$ghij==klmn\r\n~`|".utf8)
            garbage += (0..<5_000_000).map { junk[$0 % junk.count] }
            garbage += Array("\r\n--x--\r\n".utf8)
            let garbageResponse = try await app.postMail(gateway, garbage)
            #expect(garbageResponse.status == .created, "\(garbageResponse.text)")
            #expect(try await app.count("SELECT count(*) FROM attachments WHERE filename = 'junk.bin' AND size > 1200000") == 1)
            #expect(try await app.count("SELECT count(*) FROM messages") == 4)

            let tooLarge = try await app.postMail(gateway, garbage + Array(repeating: UInt8(ascii: "A"), count: 1_100_000))
            try expectProblem(tooLarge, .contentTooLarge, "payload-too-large")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 4)
        }
    }

    @Test("a NUL in the sender's address or in a known customer's reply subject, and a Message-ID of 1,200 code points, are taken in, never lost")
    func oddHeadersTakenIn() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let nulSender = try await app.postMail(gateway, testMail(from: "Taro <ta\u{0}ro@example.jp>", subject: "注文", id: "nul-from@example.jp"))
            #expect(nulSender.status == .created, "\(nulSender.text)")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'taro@example.jp'") == 1)
            let first = try await app.postMail(gateway, testMail(from: "hanako@example.jp", subject: "返品", id: "first@example.jp"))
            let reply = try await app.postMail(gateway, testMail(from: "hanako@example.jp", subject: "Re: 返品\u{0}", id: "nul-subject@example.jp"))
            #expect(reply.status == .created, "\(reply.text)")
            #expect(try reply.json["ticket_id"] as? String == (try first.json["ticket_id"] as? String), "joined by its subject")

            let decomposed = String(repeating: "e\u{301}", count: 600) + "@example.jp"
            let longID = try await app.postMail(gateway, testMail(from: "jiro@example.jp", subject: "長いID", id: decomposed))
            #expect(longID.status == .created, "\(longID.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE provider_message_id LIKE 'sha256:%'") == 1, "a digest stands for the id")
        }
    }

    @Test("a subject and a sender's name cut to their limits as PostgreSQL counts characters: 1,500 ❤️ (3,000 code points) are taken in, not refused")
    func limitsInCodePoints() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let hearts = String(repeating: "❤️", count: 1_500)
            let response = try await app.postMail(gateway, testMail(
                from: "\(String(repeating: "か\u{3099}", count: 300)) <heart@example.jp>", subject: hearts, id: "hearts@example.jp"))
            #expect(response.status == .created, "\(response.text)")
            #expect(try await app.count("SELECT length(subject) FROM tickets") == 2_000)
            #expect(try await app.count("SELECT length(display_name) FROM customers") == 500)

            // 450 characters as written, about 1,100 with its domain in A-labels: past the identity's
            // 512. No usable sender, then; the mail is taken in all the same.
            let domain = Array(repeating: "日本語", count: 110).joined(separator: ".") + ".jp"
            let long = try await app.postMail(gateway, testMail(from: "a@\(domain)", subject: "長いドメイン", id: "idn@example.jp"))
            #expect(long.status == .created, "\(long.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE email_message_id = 'idn@example.jp'") == 1)
            #expect(try await app.count("SELECT max(length(value)) FROM customer_identities") <= 512)
            let orders = try await app.keySecret(.orderSystem)
            let refused = try await app.request(.post, "/v1/customers", key: orders, json: #"{"identities":[{"kind":"email","value":"a@\#(domain)"}]}"#)
            try expectProblem(refused, .unprocessableContent, "validation-failed")
            #expect((try refused.json["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/identities/0/value", "\(refused.text)")
        }
    }
}
