import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Replies: one answerer, nothing unsafe out", .timeLimit(.minutes(15)))
struct ReplyTests {
    struct Scene {
        let app: TestApp
        let agent: (secret: String, record: APIKeyRecord)
        let customer: UUID
        let ticket: UUID
        let lastMessage: UUID
    }

    /// A customer (山田 花子, hanako@example.jp) whose mail opened a ticket, claimed by a fresh agent.
    static func scene(_ app: TestApp, claim: Bool = true) async throws -> Scene {
        let agent = try await app.key(.agent)
        let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
        let ticket = try await app.ticket(customer: customer)
        let message = try await app.inboundMessage(ticket: ticket, customer: customer, body: "商品がまだ届きません。")
        if claim { #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent.secret).status == .ok) }
        return Scene(app: app, agent: agent, customer: customer, ticket: ticket, lastMessage: message)
    }

    static func draft(_ scene: Scene, _ json: String) async throws -> String {
        let response = try await scene.app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret, json: json)
        #expect(response.status == .created, "\(response.text)")
        return try #require(try response.json["id"] as? String)
    }

    static func send(_ scene: Scene, _ reply: String, lastSeen: UUID? = nil) async throws -> TestClient.Response {
        try await scene.app.request(
            .post, "/v1/replies/\(reply)/send", key: scene.agent.secret,
            json: #"{"last_seen_message_id":"\#((lastSeen ?? scene.lastMessage).uuidString)"}"#)
    }

    static func outboxCount(_ app: TestApp) async throws -> Int {
        try await app.count("SELECT count(*) FROM outbox")
    }

    @Test("a reply needs the caller's live claim")
    func claimRequired() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app, claim: false)
            try expectProblem(
                try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret, json: #"{"body":"x"}"#),
                .conflict, "claim-required")
            let other = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: other).status == .ok)
            try expectProblem(
                try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret, json: #"{"body":"x"}"#),
                .conflict, "claim-held")
        }
    }

    @Test("a draft goes to the customer's address by default; sending makes one outbound message and one outbox row")
    func sendHappyPath() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let created = try await app.request(
                .post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret, json: #"{"body":"山田 花子 様\n\nお問い合わせありがとうございます。本日発送いたしました。"}"#)
            #expect(try created.json["recipients"] as? [String] == ["hanako@example.jp"])
            #expect(try created.json["state"] as? String == "draft")
            #expect((try created.json["subject"] as? String)?.hasPrefix("Re: 注文した商品が届かない [#") == true)
            let reply = try #require(try created.json["id"] as? String)

            // A subject emptied is the default again, not the bare "[#n]" token.
            let blank = try await app.request(.patch, "/v1/replies/\(reply)", key: scene.agent.secret, json: #"{"subject":"  "}"#)
            #expect((try blank.json["subject"] as? String)?.hasPrefix("Re: 注文した商品が届かない [#") == true, "\(blank.text)")
            let edited = try await app.request(.patch, "/v1/replies/\(reply)", key: scene.agent.secret, json: #"{"body":"山田 花子 様\n\n本日発送いたしました。"}"#)
            #expect(try edited.json["version"] as? Int == 3)

            let sent = try await Self.send(scene, reply)
            #expect(sent.status == .ok, "\(sent.text)")
            #expect(try sent.json["state"] as? String == "queued")
            #expect(try await Self.outboxCount(app) == 1)
            let timeline = try await app.request(.get, "/v1/tickets/\(scene.ticket)/messages", key: scene.agent.secret)
            let outbound = try #require((try timeline.json["items"] as? [[String: Any]])?.last)
            #expect(outbound["direction"] as? String == "outbound")
            #expect(outbound["id"] as? String == (try sent.json["message_id"] as? String))
            #expect((outbound["email_message_id"] as? String)?.hasPrefix("reply-") == true)
            let ticket = try await app.request(.get, "/v1/tickets/\(scene.ticket)", key: scene.agent.secret)
            #expect(try ticket.json["status"] as? String == "open")

            // Sent is sent: a second send, or an edit, is refused and nothing doubles.
            try expectProblem(try await Self.send(scene, reply, lastSeen: try #require(UUID(uuidString: outbound["id"] as! String))), .conflict, "reply-not-draft")
            try expectProblem(
                try await app.request(.patch, "/v1/replies/\(reply)", key: scene.agent.secret, json: #"{"body":"x"}"#), .conflict, "reply-not-draft")
            #expect(try await Self.outboxCount(app) == 1)
        }
    }

    @Test("a customer with two addresses is answered at the one they wrote from; an undeliverable one falls back to the oldest")
    func answeredWhereTheyWrote() async throws {
        try await TestApp.run { app in
            let customer = try await app.customer(name: "山田 花子", email: "hanako@work.example.jp")
            try await app.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(customer), 'email', 'hanako@home.example.jp')")
            // Written as a phone keyboard writes it: the message keeps that spelling, the identity is
            // stored lower-cased, and the two are still the one mailbox.
            let conversation = try await DeliveryTests.customerWrites(app, from: "Hanako@Home.Example.JP")
            func drafted() async throws -> [String]? {
                let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent, json: #"{"body":"ご案内します。"}"#)
                return try draft.json["recipients"] as? [String]
            }
            #expect(try await drafted() == ["hanako@home.example.jp"], "where they wrote from, not their oldest address")
            try await app.execute("UPDATE customer_identities SET undeliverable_at = now(), undeliverable_reason = 'userunknown' WHERE value = 'hanako@home.example.jp'")
            #expect(try await drafted() == ["hanako@work.example.jp"])
        }
    }

    @Test("traffic cop: a customer message after the one the agent saw stops the send, naming it")
    func trafficCop() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\n発送しました。"}"#)
            let newer = try await app.inboundMessage(ticket: scene.ticket, customer: scene.customer, body: "やっぱりキャンセルしたいです", at: 5)
            let refused = try await Self.send(scene, reply)
            try expectProblem(refused, .conflict, "new-activity")
            #expect(try refused.json["new_message_ids"] as? [String] == [newer.uuidString.lowercased()])
            #expect(try await Self.outboxCount(app) == 0)
            // Naming no message at all: the problem says which field is missing, not that mail arrived.
            let unnamed = try await app.request(.post, "/v1/replies/\(reply)/send", key: scene.agent.secret, json: "{}")
            try expectProblem(unnamed, .conflict, "new-activity")
            #expect((try unnamed.json["detail"] as? String)?.contains("no last_seen_message_id") == true, "\(unnamed.text)")
            // Having read it, the agent may send.
            #expect(try await Self.send(scene, reply, lastSeen: newer).status == .ok)
        }
    }

    @Test("""
        traffic cop: the sender's own earlier reply is news to them too (a second tab's draft is a second answer), \
        their own note is not, a colleague's note is; to whoever takes the ticket over, every reply since is
        """)
    func ownRepliesAreSeen() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let first = try await Self.draft(scene, #"{"body":"山田 花子 様\n発送いたしました。"}"#)
            let twin = try await Self.draft(scene, #"{"body":"山田 花子 様\n発送いたしました。"}"#)
            let sent = try await Self.send(scene, first)
            #expect(sent.status == .ok)
            let firstMessageID = try #require(try sent.json["message_id"] as? String)
            let firstMessage = try #require(UUID(uuidString: firstMessageID))
            let doubled = try await Self.send(scene, twin)
            try expectProblem(doubled, .conflict, "new-activity")
            #expect(try doubled.json["new_message_ids"] as? [String] == [firstMessage.uuidString.lowercased()], "the first copy, named")
            #expect(try await Self.outboxCount(app) == 1, "one answer went, not two")

            // Their own note since is nothing new to them; a colleague's is.
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/notes", key: scene.agent.secret, json: #"{"body":"在庫確認済み"}"#)
                .status == .created)
            let second = try await Self.draft(scene, #"{"body":"山田 花子 様\n追跡番号をお送りします。"}"#)
            let colleagueNote = try await app.request(.post, "/v1/tickets/\(scene.ticket)/notes", key: try await app.keySecret(.agent),
                                                      json: #"{"body":"【申し送り】返金が先です。送信しないでください"}"#)
            #expect(colleagueNote.status == .created)
            let stopped = try await Self.send(scene, second, lastSeen: firstMessage)
            try expectProblem(stopped, .conflict, "new-activity")
            let noteIDText = try #require(try colleagueNote.json["id"] as? String)
            let noteID = try #require(UUID(uuidString: noteIDText))
            #expect(try stopped.json["new_message_ids"] as? [String] == [noteID.uuidString.lowercased()], "\(stopped.text)")
            #expect(try await Self.send(scene, second, lastSeen: noteID).status == .ok)

            let supervisor = try await app.keySecret(.supervisor)
            #expect(try await app.request(.delete, "/v1/tickets/\(scene.ticket)/claim", key: supervisor).status == .ok)
            let colleague = try await app.key(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: colleague.secret).status == .ok)
            let third = try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: colleague.secret, json: #"{"body":"山田 花子 様\n補足です。"}"#)
            let refused = try await app.request(.post, "/v1/replies/\(try #require(try third.json["id"] as? String))/send", key: colleague.secret,
                                                json: #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#)
            try expectProblem(refused, .conflict, "new-activity")
            #expect((try refused.json["new_message_ids"] as? [String])?.count == 4, "both replies and both notes: \(refused.text)")
        }
    }

    @Test("""
        an agent who judged a finding wrong confirms its kind and the reply goes, recorded in reply.sent; \
        a wrong customer's name cannot be confirmed away, nor a kind the text does not have waved through another
        """)
    func confirmFindings() async throws {
        try await TestApp.run(configure: { $0.warningWords = ["要確認"] }) { app in
            let scene = try await Self.scene(app)
            _ = try await app.customer(name: "佐藤 次郎", email: "taro@example.jp")
            let mentioned = try await Self.draft(scene, #"{"body":"山田 花子 様\n添付ファイルではなく、マイページからご確認ください。"}"#)
            let send = { (reply: String, confirm: String) in
                try await app.request(.post, "/v1/replies/\(reply)/send", key: scene.agent.secret,
                                      json: #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)","confirm_findings":\#(confirm)}"#)
            }
            // Confirming the other kind leaves this one standing.
            try expectProblem(try await send(mentioned, #"["leftover-placeholder"]"#), .unprocessableContent, "missing-attachment")
            let wrongName = try await Self.draft(scene, #"{"body":"佐藤 次郎 様\n添付ファイルではなく、マイページから。"}"#)
            try expectProblem(try await send(wrongName, #"["missing-attachment"]"#), .unprocessableContent, "wrong-customer-name")
            let unknownKind = try await send(mentioned, #"["wrong-customer-name"]"#)
            try expectProblem(unknownKind, .badRequest, "malformed-body")
            // The team's warning words are a kind of their own: confirming a misread blank does not send them.
            let noteToSelf = try await Self.draft(scene, #"{"body":"山田 花子 様\n型番 XX-1 の件です。返金額は要確認"}"#)
            try expectProblem(try await send(noteToSelf, #"["leftover-placeholder"]"#), .unprocessableContent, "warning-word")
            try expectProblem(try await send(noteToSelf, #"["warning-word"]"#), .badRequest, "malformed-body")
            #expect(try await Self.outboxCount(app) == 0)

            let sent = try await send(mentioned, #"["missing-attachment"]"#)
            #expect(sent.status == .ok, "\(sent.text)")
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'reply.sent' AND data->'confirmed_findings' = '["missing-attachment"]'::jsonb
                """) == 1)
        }
    }

    @Test("each send guard refuses with its own problem type, every finding placed, and nothing sent", arguments: [
        (#"{"body":"山田 花子 様\nご注文番号●●の件、{{order.date}}に発送します。"}"#, "leftover-placeholder", 2),
        (#"{"body":"   "}"#, "empty-body", 1),
        (#"{"body":"山田 花子 様\n請求書を添付いたします。"}"#, "missing-attachment", 1),
        (#"{"body":"山田 花子 様\nご確認ください。","recipients":["taro@example.jp"]}"#, "unknown-recipient", 1),
        (#"{"body":"佐藤 次郎 様\nご確認ください。"}"#, "wrong-customer-name", 1),
        (#"{"body":"佐藤様\nご確認ください。"}"#, "wrong-customer-name", 1),
        (#"{"body":"山田 花子 様\nご確認ください。","subject":"〇〇様 ご注文の件"}"#, "leftover-placeholder", 1),
        // A subject addressed to another customer (a template copied from their ticket).
        (#"{"body":"山田 花子 様\nご確認ください。","subject":"佐藤 次郎様 お見積りのご案内"}"#, "wrong-customer-name", 1),
        // Findings in reading order: the greeting's line 1 before the blank on line 2.
        (#"{"body":"佐藤 次郎 様\nご注文番号●●の件"}"#, "wrong-customer-name", 2),
    ])
    func guards(_ draft: String, _ type: String, _ findings: Int) async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let sato = try await app.customer(name: "佐藤 次郎", email: "taro@example.jp")
            _ = sato
            let reply = try await Self.draft(scene, draft)
            let refused = try await Self.send(scene, reply)
            try expectProblem(refused, .unprocessableContent, type)
            let listed = try #require(try refused.json["findings"] as? [[String: Any]])
            #expect(listed.count == findings, "\(listed)")
            #expect(listed.first?["type"] as? String == type)
            if type == "leftover-placeholder" && !draft.contains("subject") {
                #expect(listed.map { $0["text"] as? String } == ["●●", "{{order.date}}"])
                #expect(listed.map { $0["line"] as? Int } == [2, 2])
            }
            #expect(try await Self.outboxCount(app) == 0)
            let stored = try await app.request(.get, "/v1/replies/\(reply)", key: scene.agent.secret)
            #expect(try stored.json["state"] as? String == "draft")
        }
    }

    @Test("a name the customer's own subject holds (a gift's recipient) may stand in the reply's subject")
    func customersSubjectNamesSomeone() async throws {
        try await TestApp.run { app in
            let agent = try await app.key(.agent)
            _ = try await app.customer(name: "佐藤 次郎", email: "jiro@example.jp")
            let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
            let ticket = try await app.ticket(customer: customer, subject: "佐藤様宛のギフトについて")
            let message = try await app.inboundMessage(ticket: ticket, customer: customer, body: "届いたか確認したいです。")
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent.secret).status == .ok)
            let scene = Scene(app: app, agent: agent, customer: customer, ticket: ticket, lastMessage: message)
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\n確認いたします。"}"#)
            let sent = try await Self.send(scene, reply)
            #expect(sent.status == .ok, "\(sent.text)")
        }
    }

    @Test("the customer's own words are not our blanks: their subject repeated in ours, and a line quoting their attachment")
    func customersOwnWords() async throws {
        try await TestApp.run { app in
            let agent = try await app.key(.agent)
            let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
            let ticket = try await app.ticket(customer: customer, subject: "【注文番号 A123】[URGENT] 型番XX-100が届かない")
            let message = try await app.inboundMessage(ticket: ticket, customer: customer, body: "商品の写真を添付しました。")
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent.secret).status == .ok)
            let scene = Scene(app: app, agent: agent, customer: customer, ticket: ticket, lastMessage: message)

            // The subject the service wrote ("Re: 【注文番号 A123】… [#n]") and a body quoting the photo.
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\n> 商品の写真を添付しました。\n拝見しました。交換いたします。"}"#)
            let sent = try await Self.send(scene, reply)
            #expect(sent.status == .ok, "\(sent.text)")

            // Our own blanks in the subject and an unquoted mention of an attachment still stop the send.
            let newest = try await app.insertReturningID("SELECT id FROM messages WHERE ticket_id = \(ticket) ORDER BY created_at DESC, id DESC LIMIT 1")
            let blank = try await Self.draft(scene, #"{"body":"山田 花子 様\nご確認ください。","subject":"Re: 【注文番号 A123】●●のご案内"}"#)
            let refused = try await Self.send(scene, blank, lastSeen: newest)
            try expectProblem(refused, .unprocessableContent, "leftover-placeholder")
            #expect((try refused.json["findings"] as? [[String: Any]])?.map { $0["text"] as? String } == ["●●"])
            let attached = try await Self.draft(scene, #"{"body":"山田 花子 様\n> 写真を添付しました\n伝票を添付します。"}"#)
            try expectProblem(try await Self.send(scene, attached, lastSeen: newest), .unprocessableContent, "missing-attachment")

            // A quoted line is theirs when they wrote it (型番XX-100, their subject); a template's ＞ used as a
            // bullet before our own blank is not quoting anyone.
            let bulleted = try await Self.draft(scene, #"{"body":"山田 花子 様\n> 型番XX-100が届かない\n＞お届け予定日：○○月○○日\n交換いたします。"}"#)
            let found = try await Self.send(scene, bulleted, lastSeen: newest)
            try expectProblem(found, .unprocessableContent, "leftover-placeholder")
            #expect(Set((try found.json["findings"] as? [[String: Any]])?.map { $0["line"] as? Int } ?? []) == [3], "\(found.text)")
        }
    }

    @Test("a web form's reply goes by mail: recipients typed full-width or capitalized are the one address")
    func webformRecipients() async throws {
        try await TestApp.run { app in
            let agent = try await app.key(.agent)
            let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
            let ticket = try await app.insertReturningID(
                "INSERT INTO tickets (customer_id, subject, status, channel) VALUES (\(customer), 'お問い合わせ', 'new', 'webform') RETURNING id")
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent.secret).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(ticket)/replies", key: agent.secret,
                                              json: #"{"body":"山田 花子 様\nご案内します。","recipients":["ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ","Hanako@Example.JP"]}"#)
            #expect(draft.status == .created, "\(draft.text)")
            #expect(try draft.json["channel"] as? String == "webform")
            #expect(try draft.json["recipients"] as? [String] == ["hanako@example.jp"])
        }
    }

    @Test("the greeting guard: the family or given name alone is the customer's or another's; merged customers count with their survivor; a nameless customer's ticket refuses only whole names; variant kanji are one name")
    func greetedNames() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            _ = try await app.customer(name: "佐藤 次郎")
            // 鈴木 一郎 was merged into I. Suzuki: still another customer's name.
            let suzuki = try await app.customer(name: "I. Suzuki")
            try await app.execute("INSERT INTO customers (display_name, merged_into, merged_at) VALUES ('鈴木 一郎', \(suzuki), now())")
            // Hanako's older record under another spelling, merged into her.
            try await app.execute("INSERT INTO customers (display_name, merged_into, merged_at) VALUES ('山田 はなこ', \(scene.customer), now())")
            // A namesake family: 山田 is also someone else's family name, but Hanako is a 山田 too.
            _ = try await app.customer(name: "山田 太郎")
            func verdict(_ greeting: String, on scene: Scene) async throws -> String? {
                let reply = try await Self.draft(scene, #"{"body":"\#(greeting)\nご確認ください。"}"#)
                // Each sent reply is a newer message on the ticket: the agent has seen it.
                let newest = try await app.insertReturningID(
                    "SELECT id FROM messages WHERE ticket_id = \(scene.ticket) ORDER BY created_at DESC, id DESC LIMIT 1")
                let answer = try await Self.send(scene, reply, lastSeen: newest)
                if answer.status == .ok { return nil }
                return (try answer.json["findings"] as? [[String: Any]])?.first?["type"] as? String ?? answer.text
            }
            do { let found = try await verdict("山田様", on: scene); #expect(found == nil, "\(found ?? "sent")") }
            do { let found = try await verdict("花子 様", on: scene); #expect(found == nil, "\(found ?? "sent")") }
            do { let found = try await verdict("はなこ様", on: scene); #expect(found == nil, "\(found ?? "sent")") }
            do { let found = try await verdict("Dear Hanako,", on: scene); #expect(found == nil, "\(found ?? "sent")") }
            do { let found = try await verdict("鈴木様", on: scene); #expect(found == "wrong-customer-name", "\(found ?? "sent")") }
            do { let found = try await verdict("次郎様", on: scene); #expect(found == "wrong-customer-name", "\(found ?? "sent")") }
            // A company's line first, as a Japanese letter has it; another customer's name stored without a
            // space, greeted by the family name alone; a name typed in half-width kana.
            _ = try await app.customer(name: "高橋一郎")
            _ = try await app.customer(name: "タナカ ケン")
            for greeting in ["株式会社サンプル\\n佐藤 次郎 様", "株式会社サンプル 佐藤様", "高橋様", "ﾀﾅｶ様"] {
                let found = try await verdict(greeting, on: scene)
                #expect(found == "wrong-customer-name", "\(greeting): \(found ?? "sent")")
            }
            // A line after the opening's first that only mentions someone is no greeting.
            do { let found = try await verdict("ショップサポートです\\n鈴木様にもよろしくお伝えください", on: scene); #expect(found == nil, "\(found ?? "sent")") }

            /// The same agent on a claimed ticket of `customer`, who wrote once.
            func claimed(by customer: UUID) async throws -> Scene {
                let ticket = try await app.ticket(customer: customer)
                let message = try await app.inboundMessage(ticket: ticket, customer: customer, body: "質問です")
                #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: scene.agent.secret).status == .ok)
                return Scene(app: app, agent: scene.agent, customer: customer, ticket: ticket, lastMessage: message)
            }

            // A customer with no name on record (a LINE friend): a family name alone proves nothing.
            let nameless = try await app.insertReturningID("INSERT INTO customers (display_name) VALUES (NULL) RETURNING id")
            try await app.execute("INSERT INTO customer_identities (customer_id, kind, value, raw_value) VALUES (\(nameless), 'email', 'anon@example.jp', 'anon@example.jp')")
            let unnamed = try await claimed(by: nameless)
            do { let found = try await verdict("佐藤様", on: unnamed); #expect(found == nil, "\(found ?? "sent")") }
            do { let found = try await verdict("佐藤 次郎 様", on: unnamed); #expect(found == "wrong-customer-name", "\(found ?? "sent")") }

            // A name on record in another script (from a mail's From, a LINE name in kana) or a company:
            // 山田様 is no proof of anyone else.
            for name in ["Hanako Yamada", "ヤマダ ハナコ", "株式会社山田商店"] {
                let named = try await claimed(by: try await app.customer(name: name, email: "\(UUID().uuidString.prefix(8))@example.jp"))
                do { let found = try await verdict("山田様", on: named); #expect(found == nil, "\(name): \(found ?? "sent")") }
                do { let found = try await verdict("佐藤 次郎 様", on: named); #expect(found == "wrong-customer-name", "\(name): \(found ?? "sent")") }
            }
            // A surname on record in a variant kanji is greeted in the common form (髙橋 as 高橋, 山﨑 as
            // 山崎), though other customers are 高橋 and 山崎; and the other way round. Another name still is
            // another customer's.
            _ = try await app.customer(name: "山崎 次郎")
            for (name, greeting) in [("髙橋 一郎", "高橋様"), ("山﨑 花子", "山崎様"), ("渡邊 三郎", "渡辺 三郎 様"), ("渡辺 四郎", "渡邉様")] {
                let named = try await claimed(by: try await app.customer(name: name, email: "\(UUID().uuidString.prefix(8))@example.jp"))
                do { let found = try await verdict(greeting, on: named); #expect(found == nil, "\(name) greeted \(greeting): \(found ?? "sent")") }
            }
            do {
                let named = try await claimed(by: try await app.customer(name: "髙木 五郎", email: "takagi@example.jp"))
                let found = try await verdict("山崎様", on: named)
                #expect(found == "wrong-customer-name", "\(found ?? "sent")")
            }
            // A recipient typed full-width is the address the mail goes to.
            let typed = try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret,
                                              json: #"{"body":"山田様\nご確認ください。","recipients":["ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ"]}"#)
            #expect(try typed.json["recipients"] as? [String] == ["hanako@example.jp"], "\(typed.text)")
        }
    }

    @Test("a recipient must be the customer's identity of the reply's kind: their phone number is no email recipient")
    func recipientKind() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            try await app.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(scene.customer), 'phone', '+819012345678')")
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\nご確認ください。","recipients":["+819012345678"]}"#)
            try expectProblem(try await Self.send(scene, reply), .unprocessableContent, "unknown-recipient")
            #expect(try await Self.outboxCount(app) == 0)
        }
    }

    @Test("a second send of a reply that has left answers reply-not-draft at once, even while its delivery is being recorded")
    func sendAfterLeaving() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\n発送しました。"}"#)
            #expect(try await Self.send(scene, reply).status == .ok)
            let sent = try await app.insertReturningID(
                "SELECT id FROM messages WHERE ticket_id = \(scene.ticket) ORDER BY created_at DESC, id DESC LIMIT 1")
            // The delivery recorder holds the reply's row (it then takes a key-share lock on the ticket
            // for its events): a send that waited for the row while holding the ticket would deadlock.
            try await app.database.withTransaction { connection in
                try await connection.query("SELECT 1 FROM replies WHERE id = \(reply)::uuid FOR UPDATE", logger: TestCluster.logger)
                try expectProblem(try await Self.send(scene, reply, lastSeen: sent), .conflict, "reply-not-draft")
            }
            #expect(try await Self.outboxCount(app) == 1)
        }
    }

    @Test("after a lease expires and another agent takes over, the old holder's send fails")
    func expiredLeaseSend() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\n発送しました。"}"#)
            try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 second' WHERE id = \(scene.ticket)")
            let other = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: other).status == .ok)
            try expectProblem(try await Self.send(scene, reply), .conflict, "claim-held")
            #expect(try await Self.outboxCount(app) == 0)
        }
    }

    @Test("a colleague's draft taken over, edited and sent is the sender's answer: theirs on the timeline and in the agents report")
    func takenOverDraft() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let reply = try await Self.draft(scene, #"{"body":"山田 花子 様\n確認します。"}"#)
            let supervisor = try await app.keySecret(.supervisor)
            #expect(try await app.request(.delete, "/v1/tickets/\(scene.ticket)/claim", key: supervisor).status == .ok)
            let colleague = try await app.key(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: colleague.secret).status == .ok)
            #expect(try await app.request(.patch, "/v1/replies/\(reply)", key: colleague.secret,
                                          json: #"{"body":"山田 花子 様\n（引き継ぎました）本日発送いたしました。"}"#).status == .ok)
            let sent = try await app.request(.post, "/v1/replies/\(reply)/send", key: colleague.secret,
                                             json: #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#)
            #expect(sent.status == .ok, "\(sent.text)")
            let colleagueID = try #require(colleague.record.agentID).uuidString.lowercased()
            #expect(try sent.json["author_agent_id"] as? String == scene.agent.record.agentID?.uuidString.lowercased(), "the draft keeps its first author")
            let timeline = try await app.request(.get, "/v1/tickets/\(scene.ticket)/messages", key: colleague.secret)
            let outbound = try #require((try timeline.json["items"] as? [[String: Any]])?.last)
            #expect(outbound["author_agent_id"] as? String == colleagueID)
            #expect(try await app.count("""
                SELECT count(*) FROM tickets WHERE id = \(scene.ticket) AND first_responded_at IS NOT NULL
                """) == 1)
        }
    }

    @Test("""
        a draft is thrown away by its author even after the ticket moved on, with its files and an event; a colleague \
        without the claim cannot; a sent reply stays; a retry with the same key is 204 again
        """)
    func discardDraft() async throws {
        try await TestApp.run { app in
            let scene = try await Self.scene(app)
            let twin = try await Self.draft(scene, #"{"body":"山田 花子 様\n確認します。"}"#)
            #expect(try await app.request(.post, "/v1/replies/\(twin)/attachments", key: scene.agent.secret,
                                          json: #"{"filename":"a.txt","media_type":"text/plain","content_base64":"YQ=="}"#).status == .created)
            let kept = try await Self.draft(scene, #"{"body":"山田 花子 様\n発送しました。"}"#)
            #expect(try await Self.send(scene, kept).status == .ok)
            try expectProblem(try await app.request(.delete, "/v1/replies/\(kept)", key: scene.agent.secret), .conflict, "reply-not-draft")

            // The ticket moves on to a colleague; the stale draft is still its author's to throw away, not the colleague's.
            let supervisor = try await app.keySecret(.supervisor)
            #expect(try await app.request(.delete, "/v1/tickets/\(scene.ticket)/claim", key: supervisor).status == .ok)
            let colleague = try await app.key(.agent)
            let refused = try await app.request(.delete, "/v1/replies/\(twin)", key: colleague.secret)
            try expectProblem(refused, .conflict, "claim-required")
            let discarded = try await app.request(.delete, "/v1/replies/\(twin)", key: scene.agent.secret, headers: [HTTPField.Name("Idempotency-Key")!: "discard-1"])
            #expect(discarded.status == .noContent, "\(discarded.text)")
            #expect(try await app.request(.get, "/v1/replies/\(twin)", key: scene.agent.secret).status == .notFound)
            #expect(try await app.count("SELECT count(*) FROM reply_attachments") == 0)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'reply.discarded' AND data->>'reply_id' = \(twin)") == 1)
            let again = try await app.request(.delete, "/v1/replies/\(twin)", key: scene.agent.secret, headers: [HTTPField.Name("Idempotency-Key")!: "discard-1"])
            #expect(again.status == .noContent, "a retry after a lost answer: \(again.text)")
            #expect(try await app.request(.delete, "/v1/replies/\(twin)", key: scene.agent.secret).status == .notFound)
        }
    }

    @Test("two agents race to claim and answer one ticket, 100 times: exactly one reply goes out per race")
    func claimAndReplyRaces() async throws {
        try await TestApp.run { app in
            let agents = [try await app.key(.agent), try await app.key(.agent)]
            let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
            let port = try #require(app.client.port)
            try await TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { first in
                try await TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { second in
                    let clients = [first, second]
                    for race in 0..<100 {
                        let ticket = try await app.ticket(customer: customer)
                        let message = try await app.inboundMessage(ticket: ticket, customer: customer, body: "問い合わせ \(race)")
                        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                            for index in 0..<2 {
                                group.addTask {
                                    let auth: HTTPFields = [.authorization: "Bearer \(agents[index].secret)", .contentType: "application/json"]
                                    let claim = try await clients[index].execute(.init("/v1/tickets/\(ticket)/claim", method: .post, headers: auth))
                                    guard claim.status == .ok else { return "claim \(claim.status.code)" }
                                    let draft = try await clients[index].execute(.init(
                                        "/v1/tickets/\(ticket)/replies", method: .post, headers: auth,
                                        body: .init(string: #"{"body":"山田 花子 様\n承知しました。"}"#)))
                                    guard draft.status == .created, let body = draft.body,
                                        let id = (try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])?["id"] as? String
                                    else { return "draft \(draft.status.code)" }
                                    let send = try await clients[index].execute(.init(
                                        "/v1/replies/\(id)/send", method: .post, headers: auth,
                                        body: .init(string: #"{"last_seen_message_id":"\#(message.uuidString)"}"#)))
                                    return "send \(send.status.code)"
                                }
                            }
                            return try await group.reduce(into: []) { $0.append($1) }
                        }
                        #expect(outcomes.sorted() == ["claim 409", "send 200"], "race \(race): \(outcomes)")
                    }
                }
            }
            #expect(try await Self.outboxCount(app) == 100)
            #expect(try await app.count("SELECT count(*) FROM (SELECT ticket_id FROM messages WHERE direction = 'outbound' GROUP BY ticket_id HAVING count(*) > 1) doubled") == 0)
        }
    }

    @Test("Idempotency-Key: a retried create makes one draft, a retried send one delivery and a retried note one note, each answered as the first was; the key reused for another request is 422")
    func idempotentReplies() async throws {
        try await TestApp.run { app in
            let conversation = try await DeliveryTests.customerWrites(app, from: "retry@example.jp")
            func create(_ key: String, _ text: String) async throws -> TestClient.Response {
                try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                      headers: [HTTPField.Name("Idempotency-Key")!: key], json: #"{"body":"\#(text)"}"#)
            }
            let first = try await create("draft-1", "お調べします。")
            #expect(first.status == .created, "\(first.text)")
            let reply = try #require(try first.json["id"] as? String)
            let again = try await create("draft-1", "お調べします。")
            #expect(again.status == .created)
            #expect(try again.json["id"] as? String == reply)
            // Five retries at once, as a client that timed out several times: still one draft.
            let racing = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<5 { group.addTask { try await create("draft-2", "少々お待ちください。").json["id"] as? String } }
                return try await group.reduce(into: Set<String?>()) { $0.insert($1) }
            }
            #expect(racing.count == 1 && racing.first! != nil && racing.first! != reply)
            #expect(try await app.count("SELECT count(*) FROM replies") == 2)
            try expectProblem(try await create("draft-1", "別の内容"), .unprocessableContent, "idempotency-key-reused")
            try expectProblem(try await create("日本語", "お調べします。"), .badRequest, "invalid-parameter")
            #expect(try await app.count("SELECT count(*) FROM replies") == 2)

            func send(_ key: String?) async throws -> TestClient.Response {
                var headers: HTTPFields = [:]
                if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
                return try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent, headers: headers,
                                             json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#)
            }
            let sent = try await send("send-1")
            #expect(sent.status == .ok, "\(sent.text)")
            let resent = try await send("send-1")
            #expect(resent.status == .ok, "\(resent.text)")
            #expect(try resent.json["id"] as? String == reply && resent.json["message_id"] as? String == sent.json["message_id"] as? String)
            try expectProblem(try await send(nil), .conflict, "reply-not-draft")
            #expect(try await app.count("SELECT count(*) FROM outbox WHERE reply_id = \(UUID(uuidString: reply)!)") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'reply.sent'") == 1)

            // A handover note retried after a lost answer, three times at once: one note.
            func note(_ key: String, _ text: String) async throws -> TestClient.Response {
                try await app.request(.post, "/v1/tickets/\(conversation.ticket)/notes", key: conversation.agent,
                                      headers: [HTTPField.Name("Idempotency-Key")!: key], json: #"{"body":"\#(text)"}"#)
            }
            let notes = try await withThrowingTaskGroup(of: TestClient.Response.self) { group in
                for _ in 0..<3 { group.addTask { try await note("note-1", "明日、倉庫に確認します") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(notes.allSatisfy { $0.status == .created }, "\(notes.map(\.text))")
            #expect(Set(notes.compactMap { try? $0.json["id"] as? String }).count == 1)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'internal'") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'note.added'") == 1)
            try expectProblem(try await note("note-1", "別のメモ"), .unprocessableContent, "idempotency-key-reused")
        }
    }
}
