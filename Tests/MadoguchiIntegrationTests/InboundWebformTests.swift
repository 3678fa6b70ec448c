import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Web form in: stored as sent, one customer from its contacts, never doubled", .timeLimit(.minutes(15)))
struct InboundWebformTests {
    static func post(_ app: TestApp, _ key: String, _ json: String, idempotencyKey: String? = nil) async throws -> TestClient.Response {
        var headers: HTTPFields = [:]
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        return try await app.request(.post, "/v1/inbound/webform", key: key, headers: headers, json: json)
    }

    @Test("a submission makes a ticket with the form's fields shown under the message; the request is kept as sent")
    func submission() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let json = #"""
                {"form_id":"contact","submission_id":"s-1","name":"山田 花子","email":"Hanako@Example.JP","phone":"０９０－１２３４－５６７８",
                 "contacts_verified":true,"subject":"返品について","body":"サイズが合いませんでした。","fields":{"order_no":"A-1001","size":"M"},
                 "attachments":[{"filename":"../receipt.png","media_type":"image/png","content_base64":"aGVsbG8="}]}
                """#
            let response = try await Self.post(app, gateway, json)
            #expect(response.status == .created, "\(response.text)")
            let outcome = try response.json
            #expect(outcome["flags"] == nil)
            let agent = try await app.keySecret(.agent)
            let messages = try await app.request(.get, "/v1/tickets/\(outcome["ticket_id"] as! String)/messages", key: agent)
            let message = try #require((try messages.json["items"] as? [[String: Any]])?.first)
            #expect(message["channel"] as? String == "webform")
            #expect((message["body_text"] as? String)?.contains("order_no: A-1001") == true)
            #expect(message["visible_text"] as? String == "サイズが合いませんでした。")
            #expect(((message["attachments"] as? [[String: Any]])?.first?["filename"] as? String) == ".._receipt.png")

            let customer = try await app.request(.get, "/v1/customers/\(outcome["customer_id"] as! String)", key: agent)
            let values = Set(((try customer.json["identities"] as? [[String: Any]]) ?? []).compactMap { $0["value"] as? String })
            // Typed `Hanako@Example.JP`: stored in the one spelling mail to and from it is matched in.
            #expect(values == ["hanako@example.jp", "+819012345678"])
            #expect(try await app.count("""
                SELECT count(*) FROM inbound_payloads WHERE channel = 'webform' AND body = \(ByteBuffer(string: json))
                """) == 1)

            // Read back as sent: as bytes, its own type in the metadata; never labelled a mail.
            let inbound = try #require(outcome["inbound_id"] as? String)
            let supervisor = try await app.keySecret(.supervisor)
            let raw = try await app.client.execute(uri: "/v1/inbound/\(inbound)", method: .get,
                                                   headers: [.authorization: "Bearer \(supervisor)", .accept: "application/octet-stream"])
            #expect(raw.status == .ok)
            #expect(raw.headers[.contentType] == "application/octet-stream")
            #expect(Array(buffer: raw.body) == Array(json.utf8))
            #expect(try await app.request(.get, "/v1/inbound/\(inbound)", key: supervisor).json["content_type"] as? String == "application/json")
            let asMail = try await app.request(.get, "/v1/inbound/\(inbound)", key: supervisor, headers: [.accept: "message/rfc822"])
            #expect(asMail.status == .notAcceptable, "\(asMail.text)")
        }
    }

    @Test("the same submission 10 times at once is one message; a reused key with another body is 422")
    func idempotency() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let json = #"{"form_id":"contact","submission_id":"same","email":"a@example.jp","body":"一度だけ"}"#
            let statuses = try await app.postConcurrently(
                "/v1/inbound/webform", headers: [.authorization: "Bearer \(gateway)", .contentType: "application/json"],
                bodies: Array(repeating: ByteBuffer(string: json), count: 10))
            #expect(statuses.filter { $0 == .created }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == .ok }.count == 9, "\(statuses)")
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)

            let keyed = #"{"form_id":"contact","submission_id":"k1","email":"a@example.jp","body":"鍵付き"}"#
            #expect(try await Self.post(app, gateway, keyed, idempotencyKey: "form-k").status == .created)
            #expect(try await Self.post(app, gateway, keyed, idempotencyKey: "form-k").status == .ok)
            try expectProblem(
                try await Self.post(app, gateway, #"{"form_id":"contact","submission_id":"k2","body":"別"}"#, idempotencyKey: "form-k"),
                .unprocessableContent, "idempotency-key-reused")

            // The key is the caller's: another gateway picking the same one sends its own request,
            // and is told nothing of the first gateway's.
            let other = try await app.keySecret(.gateway)
            let theirs = try await Self.post(app, other, #"{"form_id":"contact","submission_id":"k3","email":"b@example.jp","body":"別の窓口"}"#,
                                             idempotencyKey: "form-k")
            #expect(theirs.status == .created, "\(theirs.text)")
            #expect(try await Self.post(app, other, #"{"form_id":"contact","submission_id":"k3","email":"b@example.jp","body":"別の窓口"}"#,
                                        idempotencyKey: "form-k").status == .ok)
            #expect(try await app.count("SELECT count(*) FROM messages") == 3)

            // A submission id used again for someone else (another site's form counting from 1) is
            // no retry: 422, nothing stored, rather than a 200 with the first sender's message.
            let payloads = try await app.count("SELECT count(*) FROM inbound_payloads")
            let reused = try await Self.post(app, other, #"{"form_id":"contact","submission_id":"same","email":"c@example.jp","body":"別の人"}"#)
            try expectProblem(reused, .unprocessableContent, "provider-message-id-reused")
            #expect(!reused.text.contains("一度だけ") && !reused.text.contains("a@example.jp"), "nothing of the first sender's")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == payloads)
            #expect(try await app.count("SELECT count(*) FROM messages") == 3)

            // Nothing to compare senders by (the first had no contact), or the same sender: other
            // words under the id are still another message, refused, not answered as a retry and lost.
            #expect(try await Self.post(app, gateway, #"{"form_id":"contact","submission_id":"anon","body":"連絡先なしの問い合わせ"}"#).status == .created)
            try expectProblem(try await Self.post(app, gateway, #"{"form_id":"contact","submission_id":"anon","email":"d@example.jp","body":"返品したい"}"#),
                              .unprocessableContent, "provider-message-id-reused")
            try expectProblem(try await Self.post(app, gateway, #"{"form_id":"contact","submission_id":"k1","email":"a@example.jp","body":"別の用件"}"#),
                              .unprocessableContent, "provider-message-id-reused")
            // The same submission again is still a retry.
            #expect(try await Self.post(app, gateway, #"{"form_id":"contact","submission_id":"anon","body":"連絡先なしの問い合わせ"}"#).status == .ok)
            #expect(try await app.count("SELECT count(*) FROM messages") == 4)
        }
    }

    @Test("checked contacts: a known email brings a new phone to its customer; contacts of two customers go to the first, with a merge suggestion")
    func identities() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let known = try await app.customer(name: "既存", email: "known@example.jp")
            let first = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"1","email":"known@example.jp","phone":"03-1234-5678","contacts_verified":true,"body":"x"}"#)
            #expect(try first.json["customer_id"] as? String == known.uuidString.lowercased())
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(known)") == 2)

            let other = try await app.customer(name: "別人", email: "other@example.jp")
            let both = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"2","email":"known@example.jp","external_id":"C-9","phone":"(03) 1234-5678","contacts_verified":true,"body":"y"}"#)
            #expect(try both.json["customer_id"] as? String == known.uuidString.lowercased())
            #expect(try both.json["flags"] == nil)
            try await app.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(other), 'external', 'C-10')")
            let clash = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"3","email":"known@example.jp","external_id":"C-10","body":"z"}"#)
            #expect(try clash.json["customer_id"] as? String == known.uuidString.lowercased())
            // Unchecked, the other customer's id is not this one's either: not linked, and a person is asked.
            #expect(try clash.json["flags"] as? [String] == ["contact-not-linked", "merge-suggested"])
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'customer.merge_suggested'") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(other)") == 2)

            // Checked, a known phone finds its customer for a new email, which joins it.
            let member = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"4","email":"new@example.jp","phone":"03-1234-5678","contacts_verified":true,"body":"w"}"#)
            #expect(try member.json["customer_id"] as? String == known.uuidString.lowercased())
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(known) AND value = 'new@example.jp'") == 1)
        }
    }

    @Test("unchecked contacts never reach into a known customer: a stranger's phone beside a new email, or a new phone beside a known email")
    func uncheckedContacts() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let victim = try await app.customer(name: "顧客", email: "victim@example.jp")
            try await app.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(victim), 'phone', '+81312345678')")

            // Someone else's email beside the customer's phone: a new customer for the email (replies
            // go there), the phone stays the customer's, and a person is asked.
            let stranger = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"1","email":"stranger@example.jp","phone":"03-1234-5678","body":"注文の配送先を変えてください"}"#)
            let strangerID = try #require(try stranger.json["customer_id"] as? String)
            #expect(strangerID != victim.uuidString.lowercased())
            #expect(try stranger.json["flags"] as? [String] == ["contact-not-linked", "merge-suggested"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(victim)") == 2)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'stranger@example.jp' AND customer_id = \(victim)") == 0)
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'customer.merge_suggested' AND data->>'other_customer_id' = \(victim.uuidString.lowercased())
                  AND data->'typed_unchecked' = 'true'
                """) == 1)

            // The customer's email beside a phone nobody has: the message is the customer's (replies go
            // to their address), the phone is kept with it but not added to them.
            let typed = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"2","email":"victim@example.jp","phone":"090-1111-2222","body":"電話番号が変わりました"}"#)
            #expect(try typed.json["customer_id"] as? String == victim.uuidString.lowercased())
            #expect(try typed.json["flags"] as? [String] == ["contact-not-linked"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819011112222'") == 0)
            let messageID = try #require(try typed.json["message_id"] as? String)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE id = \(messageID)::uuid AND metadata->>'phone' = '090-1111-2222'") == 1)

            // A first contact: the new customer has the address answers go to; the typed phone stays in
            // the message (as an identity, someone's later SMS from it would land in this history).
            let fresh = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"3","email":"fresh@example.jp","phone":"090-3333-4444","body":"初めて"}"#)
            let freshID = try #require(try fresh.json["customer_id"] as? String)
            #expect(try fresh.json["flags"] as? [String] == ["contact-not-linked"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(freshID)::uuid") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819033334444'") == 0)

            // A phone alone is the form's answer address: it finds its customer, as an email does.
            let phoneOnly = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"4","phone":"03-1234-5678","body":"電話でお願いします"}"#)
            #expect(try phoneOnly.json["customer_id"] as? String == victim.uuidString.lowercased())
        }
    }

    @Test("an address typed full-width, capitalized or with a Japanese domain is the mailbox mail comes from: the customer's mail joins them")
    func addressSpellings() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            for (typed, mailed) in [("taro@ｅｘａｍｐｌｅ．ｃｏ．ｊｐ", "taro@example.co.jp"), ("ｊｉｒｏ＠example.jp", "jiro@example.jp"),
                                    ("hanako@日本語.jp", "hanako@xn--wgv71a119e.jp"), ("Saburo.Sato@Example.JP", "saburo.sato@example.jp"),
                                    ("shiro@example.jp", "Shiro@example.jp")] {
                let form = try await Self.post(app, gateway, #"{"form_id":"contact","submission_id":"\#(typed)","email":"\#(typed)","body":"質問です"}"#)
                #expect(form.status == .created, "\(form.text)")
                let mail = try await app.postMail(gateway, "From: \(mailed)\r\nTo: support@shop.example\r\nSubject: 追記\r\nMessage-ID: <\(UUID())@example>\r\n\r\n追記です\r\n")
                #expect(mail.status == .created, "\(mail.text)")
                #expect(try mail.json["customer_id"] as? String == (try form.json["customer_id"] as? String), "\(typed) and \(mailed) are one customer")
            }
        }
    }

    @Test("a name typed with line breaks is kept on one line: every reply's To header carries it")
    func nameOnOneLine() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let posted = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"n","email":"named@example.jp","name":"山田\r\n\n太郎","body":"x"}"#)
            #expect(posted.status == .created, "\(posted.text)")
            #expect(try await app.count("SELECT count(*) FROM customers WHERE display_name = '山田 太郎'") == 1)
        }
    }

    @Test("no contact at all, or a contact mistyped, is taken in and flagged; bad fields are 422 naming each, and nothing is written")
    func badInput() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let anonymous = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"anon","body":"連絡先なし"}"#)
            #expect(anonymous.status == .created)
            #expect(try anonymous.json["flags"] as? [String] == ["no-contact"])

            // A phone number a digit short beside a good address: the inquiry is kept, the address
            // answers it, and the agent sees what was typed. (Its time is JavaScript's toISOString.)
            let mistyped = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"typo","email":"megumi.m@example.jp","phone":"090-1234-567","body":"配送先を変更したい","submitted_at":"2026-12-06T21:30:00.123Z"}"#)
            #expect(mistyped.status == .created, "\(mistyped.text)")
            #expect(try mistyped.json["flags"] as? [String] == ["contact-unreadable"])
            let agent = try await app.keySecret(.agent)
            let ticket = try await app.request(.get, "/v1/tickets/\(try mistyped.json["ticket_id"] as! String)", key: agent)
            #expect((try ticket.json["tags"] as? [String])?.contains("contact-unreadable") == true)
            let messages = try await app.request(.get, "/v1/tickets/\(try mistyped.json["ticket_id"] as! String)/messages", key: agent)
            let text = (try messages.json["items"] as? [[String: Any]])?.first?["body_text"] as? String
            #expect(text?.contains("phone (not usable: '090-1234-567' is not a phone number") == true, "\(text ?? "")")
            #expect(try await app.strings("SELECT value FROM customer_identities ORDER BY value") == ["megumi.m@example.jp"])
            // Nothing usable at all: no contact, and what was typed is still there.
            let nothing = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"typo2","email":"a@x.jp, b@y.jp","body":"x"}"#)
            #expect(try nothing.json["flags"] as? [String] == ["contact-unreadable", "no-contact"], "\(nothing.text)")

            let bad = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"bad","email":"nope","phone":"12","body":"x","attachments":[{"filename":"a","media_type":"png","content_base64":"!!"}]}"#)
            try expectProblem(bad, .unprocessableContent, "validation-failed")
            let pointers = Set(((try bad.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String })
            #expect(pointers == ["/attachments/0/media_type", "/attachments/0/content_base64"], "\(bad.text)")
            // Longer than an identity may be: named by its own field, not by the table's column.
            let long = try await Self.post(app, gateway, #"{"form_id":"f","submission_id":"long","external_id":""# + String(repeating: "会", count: 513) + #"","body":"x"}"#)
            try expectProblem(long, .unprocessableContent, "validation-failed")
            #expect(((try long.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String } == ["/external_id"], "\(long.text)")
            try expectProblem(try await Self.post(app, gateway, #"{"form_id":"f","body":"x"}"#), .badRequest, "malformed-body")
            try expectProblem(try await Self.post(app, gateway, #"{"form_id":"f","submission_id":1,"body":"x"}"#), .badRequest, "malformed-body")
            let huge = #"{"form_id":"f","submission_id":"big","body":""# + String(repeating: "あ", count: 400_000) + #""}"#
            try expectProblem(try await Self.post(app, gateway, huge), .unprocessableContent, "validation-failed")
            // The fields, written under the message, are limited as the body is.
            let hugeFields = #"{"form_id":"f","submission_id":"bigfields","body":"x","fields":{"a":""# + String(repeating: "x", count: 200_000) + #""}}"#
            let refusedFields = try await Self.post(app, gateway, hugeFields)
            try expectProblem(refusedFields, .unprocessableContent, "validation-failed")
            #expect(((try refusedFields.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String } == ["/fields"], "\(refusedFields.text)")
            #expect(try await app.count("SELECT count(*) FROM messages") == 3)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 3)
        }
    }
}

/// Migration 0062's second half, in Swift: identities stored under an internationalized domain before
/// identities took one spelling are converted to the A-label their mail comes back from.
@Suite("Email identities stored in an older spelling", .timeLimit(.minutes(5)))
struct EmailIdentitySpellingTests {
    /// A new mail from `address` is filed under `customer`.
    static func expectMail(from address: String, joins customer: UUID, in app: TestApp) async throws {
        let gateway = try await app.keySecret(.gateway)
        let mail = try await app.postMail(gateway, "From: \(address)\r\nTo: support@shop.example\r\nSubject: 再送\r\nMessage-ID: <\(UUID())@example>\r\n\r\nよろしく\r\n")
        #expect(try mail.json["customer_id"] as? String == customer.uuidString.lowercased(), "\(mail.text)")
    }

    @Test("a U-label domain becomes its A-label, oldest first, never onto an address another identity holds")
    func convertsLegacySpellings() async throws {
        try await TestApp.run { app in
            let first = try await app.customer(name: "一")
            let second = try await app.customer(name: "二")
            try await app.execute("""
                INSERT INTO customer_identities (customer_id, kind, value, created_at) VALUES
                    (\(first), 'email', 'hanako@日本語.jp', now() - interval '2 days'),
                    (\(first), 'email', 'taro@例え.jp', now() - interval '2 days'),
                    (\(second), 'email', 'taro@xn--r8jz45g.jp', now() - interval '1 day'),
                    (\(second), 'email', 'jiro@日本語.JP', now())
                """)
            let converted = try await app.database.withConnection { connection in
                try await EmailIdentitySpellings.convert(on: connection, logger: TestCluster.logger)
            }
            #expect(converted == 2)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'hanako@xn--wgv71a119e.jp' AND customer_id = \(first)") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'jiro@xn--wgv71a119e.jp'") == 1)
            // The A-label was already another identity's: both stay, for a person to merge.
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value IN ('taro@例え.jp', 'taro@xn--r8jz45g.jp')") == 2)
            // Now found by the spelling mail comes back from.
            try await Self.expectMail(from: "hanako@xn--wgv71a119e.jp", joins: first, in: app)
        }
    }

    @Test("migration 0068: a capitalized address is lower-cased, oldest first; one another customer holds stays and a merge is suggested, once")
    func lowerCasesLocalParts() async throws {
        try await TestApp.run { app in
            let first = try await app.customer(name: "一")
            let second = try await app.customer(name: "二")
            try await app.execute("""
                INSERT INTO customer_identities (customer_id, kind, value, created_at) VALUES
                    (\(first), 'email', 'Hanako.Yamada@example.jp', now() - interval '3 days'),
                    (\(first), 'email', 'hanako.yamada@example.jp', now() - interval '2 days'),
                    (\(first), 'email', 'Taro@docomo.ne.jp', now() - interval '2 days'),
                    (\(second), 'email', 'TARO@docomo.ne.jp', now() - interval '1 day'),
                    (\(second), 'email', 'Jiro@example.jp', now()),
                    (\(second), 'email', 'Ünïcode@example.jp', now()),
                    (\(second), 'external', 'ORDER-1', now())
                """)
            // Run 0068 twice, as a redeploy after a failed start may.
            for _ in 0..<2 {
                try await app.execute("DELETE FROM schema_migrations WHERE version = 68")
                try await Migrator.bundled().migrate(app.database, logger: TestCluster.logger)
            }
            let values = Set(try await app.strings("SELECT value FROM customer_identities WHERE customer_id = \(second)"))
            #expect(values == ["ORDER-1", "TARO@docomo.ne.jp", "jiro@example.jp", "Ünïcode@example.jp"])
            // The oldest Taro took the one spelling; the other stays for a person to merge, named once.
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'taro@docomo.ne.jp' AND customer_id = \(first)") == 1)
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'customer.merge_suggested' AND customer_id = \(second)
                  AND data = jsonb_build_object('other_customer_id', \(first)::text, 'kind', 'email', 'value', 'TARO@docomo.ne.jp', 'channel', 'email')
                """) == 1)
            // One customer's two spellings: the lower-cased one was there already; nothing to suggest.
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value IN ('Hanako.Yamada@example.jp', 'hanako.yamada@example.jp')") == 2)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'customer.merge_suggested'") == 1)
            // The next mail in any case joins the customer that holds the one spelling.
            try await Self.expectMail(from: "TaRo@docomo.ne.jp", joins: first, in: app)
        }
    }
}
