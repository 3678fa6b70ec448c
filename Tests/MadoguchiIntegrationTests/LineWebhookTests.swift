import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import Madoguchi

@Suite("LINE webhook: signed, several events per request, each taken once", .timeLimit(.minutes(15)))
struct LineWebhookTests {
    static let user = "U4af4980629f1ed0c8e9e0e2fd2e3a0a1"

    static func configured(_ configuration: inout Configuration) {
        configuration.providers.lineChannelSecrets = ["line-new", "line-old"]
    }

    /// LINE's signature: Base64(HMAC-SHA256(channel secret, body)).
    static func signature(_ body: String, secret: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(secret.utf8)))).base64EncodedString()
    }

    static func event(_ id: String, type: String, user: String = user, redelivery: Bool = false, timestamp: Int64 = 1795575845000,
                      _ extra: String = "") -> String {
        #"{"type":"\#(type)","mode":"active","timestamp":\#(timestamp),"source":{"type":"user","userId":"\#(user)"},"webhookEventId":"\#(id)","deliveryContext":{"isRedelivery":\#(redelivery)}\#(extra.isEmpty ? "" : "," + extra)}"#
    }

    static func text(_ id: String, messageID: String, _ text: String, redelivery: Bool = false, user: String = user) -> String {
        event(id, type: "message", user: user, redelivery: redelivery,
              #""replyToken":"r\#(id)","message":{"id":"\#(messageID)","type":"text","quoteToken":"q","text":"\#(text)"}"#)
    }

    static func body(_ events: [String]) -> String {
        #"{"destination":"Ubot0000000000000000000000000000","events":[\#(events.joined(separator: ","))]}"#
    }

    @discardableResult
    static func post(_ app: TestApp, _ body: String, secret: String? = "line-new") async throws -> TestClient.Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let secret { headers[HTTPField.Name("X-Line-Signature")!] = signature(body, secret: secret) }
        return try await app.patiently("/v1/inbound/chat/line", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    static func results(_ response: some HTTPTestResponse) throws -> [String] {
        ((try response.json["events"] as? [[String: Any]]) ?? []).compactMap { $0["result"] as? String }
    }

    @Test("follow, two texts and a postback in one webhook; a redelivery of it takes nothing twice")
    func severalEvents() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let webhook = Self.body([
                Self.event("01HF0000000000000000000001", type: "follow"),
                Self.text("01HF0000000000000000000002", messageID: "5001", "注文した商品が届きません"),
                Self.text("01HF0000000000000000000003", messageID: "5002", "注文番号は A-1234 です"),
                Self.event("01HF0000000000000000000004", type: "postback", #""postback":{"data":"action=contact&order=A-1234"}"#),
                Self.event("01HF0000000000000000000005", type: "beacon", #""beacon":{"hwid":"d41d8cd98f","type":"enter"}"#),
            ])
            let first = try await Self.post(app, webhook)
            #expect(first.status == .ok, "\(first.text)")
            #expect(try Self.results(first) == ["recorded", "taken", "taken", "recorded", "ignored"])
            let events = try #require(try first.json["events"] as? [[String: Any]])
            let ticket = (events[1]["inbound"] as? [String: Any])?["ticket_id"] as? String
            #expect(ticket != nil && ticket == (events[2]["inbound"] as? [String: Any])?["ticket_id"] as? String)

            let again = Self.body([
                Self.event("01HF0000000000000000000001", type: "follow", redelivery: true),
                Self.text("01HF0000000000000000000002", messageID: "5001", "注文した商品が届きません", redelivery: true),
                Self.text("01HF0000000000000000000006", messageID: "5003", "まだですか"),
            ])
            let redelivered = try await Self.post(app, again, secret: "line-old")
            #expect(try Self.results(redelivered) == ["duplicate", "duplicate", "taken"], "\(redelivered.text)")
            let duplicate = try #require((try redelivered.json["events"] as? [[String: Any]])?[1]["inbound"] as? [String: Any])
            #expect(duplicate["message_id"] as? String == (events[1]["inbound"] as? [String: Any])?["message_id"] as? String)

            #expect(try await app.count("SELECT count(*) FROM messages WHERE provider = 'line'") == 3)
            #expect(try await app.count("SELECT count(*) FROM customers") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'line' AND value = \(Self.user)") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'chat.postback' AND data->>'postback' = 'action=contact&order=A-1234'") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'customer.followed'") == 1)

            // The stored request shows what became of each event.
            let inboundID = try #require(try first.json["inbound_id"] as? String)
            let stored = try await app.request(.get, "/v1/inbound/\(inboundID)", key: try await app.keySecret(.supervisor))
            #expect(try stored.json["parse_status"] as? String == "parsed")
            #expect(((try stored.json["webhook_result"] as? [String: Any])?["events"] as? [[String: Any]])?.count == 5, "\(stored.text)")

            // A group member who did not share their id: the group stands for the customer, every time.
            let group = #"{"type":"group","groupId":"Cgroup000000000000000000000000001"}"#
            for (index, text) in ["グループから", "もう一度"].enumerated() {
                let event = Self.text("01HF00000000000000000000G\(index)", messageID: "G\(index)", text)
                    .replacingOccurrences(of: #"{"type":"user","userId":"\#(Self.user)"}"#, with: group)
                #expect(try Self.results(try await Self.post(app, Self.body([event]))) == ["taken"])
            }
            #expect(try await app.count("SELECT count(DISTINCT customer_id) FROM messages WHERE metadata->>'source_type' = 'group'") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'line:Cgroup000000000000000000000000001'") == 1)
        }
    }

    @Test("a LINE message a gateway already relayed through /v1/inbound/chat is a duplicate there; the other events of the webhook are taken")
    func takenThroughTheGateway() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let gateway = try await app.keySecret(.gateway)
            let relayed = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: """
                {"provider":"line","conversation_id":"\(Self.user)","provider_message_id":"5001","sender":{"provider_user_id":"\(Self.user)"},"text":"注文番号です"}
                """)
            #expect(relayed.status == .created, "\(relayed.text)")
            let response = try await Self.post(app, Self.body([
                Self.text("ev-1", messageID: "5001", "注文番号です"),
                Self.text("ev-2", messageID: "5002", "届きません", user: "U0000000000000000000000000000other"),
            ]))
            #expect(response.status == .ok, "\(response.text)")
            #expect(try Self.results(response) == ["duplicate", "taken"])
            #expect(try await app.count("SELECT count(*) FROM messages WHERE channel = 'chat'") == 2)

            // The other way round: LINE's webhook first, then the gateway relays the same message.
            let again = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: """
                {"provider":"line","conversation_id":"U0000000000000000000000000000other","provider_message_id":"5002",
                 "sender":{"provider_user_id":"U0000000000000000000000000000other"},"text":"届きません"}
                """)
            #expect(again.status == .ok, "\(again.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE channel = 'chat'") == 2)
        }
    }

    @Test("a LINE user a gateway relayed and the same user through LINE's webhook are one customer, by their LINE identity; a gateway's user id is trimmed")
    func relayedUserIsLineCustomer() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let gateway = try await app.keySecret(.gateway)
            let relayed = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: """
                {"provider":"line","conversation_id":"\(Self.user)","provider_message_id":"8001","sender":{"provider_user_id":" \(Self.user) "},"text":"注文番号です"}
                """)
            #expect(relayed.status == .created, "\(relayed.text)")
            let response = try await Self.post(app, Self.body([Self.text("ev-8", messageID: "8002", "まだ届きません")]))
            #expect(try Self.results(response) == ["taken"], "\(response.text)")
            #expect(try await app.count("SELECT count(DISTINCT customer_id) FROM messages WHERE channel = 'chat'") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'line' AND value = \(Self.user)") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'chat'") == 0)
            // Any other provider's user stays a chat identity, trimmed as one added through the API is.
            let other = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: """
                {"provider":"intercom","conversation_id":"c-1","provider_message_id":"m-1","sender":{"provider_user_id":"u-42\\n"},"text":"こんにちは"}
                """)
            #expect(other.status == .created, "\(other.text)")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'chat' AND value = 'intercom:u-42'") == 1)
        }
    }

    @Test("one LINE message through the webhook and the gateway at once: one message, and neither answer an error")
    func bothRoutesAtOnce() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let gateway = try await app.keySecret(.gateway)
            func waiting() async throws -> Int {
                try await app.count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            }
            // The conversation held (another message of it being taken in), so that the webhook gets
            // there first and the gateway, having found no message yet, waits behind it.
            let (webhook, relayed) = try await app.database.withConnection { connection in
                try await connection.query("BEGIN", logger: TestCluster.logger)
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(hashtextextended(\("chat-conversation:line:" + Self.user), 0))", logger: TestCluster.logger)
                let webhook = Task { try await Self.post(app, Self.body([Self.text("ev-both", messageID: "7001", "返品したいです")])) }
                #expect(try await ChildProcess.eventually(timeout: .seconds(30)) { try await waiting() == 1 })
                let relayed = Task {
                    try await app.request(.post, "/v1/inbound/chat", key: gateway, json: """
                        {"provider":"line","conversation_id":"\(Self.user)","provider_message_id":"7001","sender":{"provider_user_id":"\(Self.user)"},"text":"返品したいです"}
                        """)
                }
                #expect(try await ChildProcess.eventually(timeout: .seconds(30)) { try await waiting() == 2 })
                try await connection.query("COMMIT", logger: TestCluster.logger)
                return (try await webhook.value, try await relayed.value)
            }
            #expect(webhook.status == .ok, "\(webhook.text)")
            #expect(try Self.results(webhook) == ["taken"])
            #expect(relayed.status == .ok, "the gateway's answer: \(relayed.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE channel = 'chat'") == 1)
        }
    }

    @Test("the same webhook redelivered 5 times at once is one message")
    func concurrentRedelivery() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let webhook = Self.body([Self.text("01HF0000000000000000000010", messageID: "6001", "至急お願いします", redelivery: true)])
            let statuses = try await app.postConcurrently(
                "/v1/inbound/chat/line",
                headers: [.contentType: "application/json", HTTPField.Name("X-Line-Signature")!: Self.signature(webhook, secret: "line-new")],
                bodies: Array(repeating: ByteBuffer(string: webhook), count: 5))
            #expect(statuses == Array(repeating: .ok, count: 5))
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE provider = 'line'") == 5)
        }
    }

    @Test("refused requests older than MADOGUCHI_REJECTED_PAYLOAD_DAYS are removed; newer ones and every other payload stay")
    func rejectedRetention() async throws {
        try await TestApp.run { app in
            for (status, age) in [("rejected", "40 days"), ("rejected", "31 days"), ("rejected", "29 days"), ("failed", "40 days"), ("parsed", "400 days")] {
                try await app.execute("""
                    INSERT INTO inbound_payloads (channel, provider, body, parse_status, parse_error, received_at)
                    VALUES ('chat', 'line', '\\x7b7d', \(status), \(status == "parsed" ? nil : "x"), now() - \(age)::text::interval)
                    """)
            }
            let removed = try await InboundPayloadStore(logger: TestCluster.logger).removeRejected(olderThanDays: 30, database: app.database)
            #expect(removed == 2)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'rejected'") == 1)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status <> 'rejected'") == 2)
        }
    }

    @Test("missing, wrong and retired signatures are 403 — the wrong ones kept as rejected, the missing one refused unread; bad JSON is kept as failed")
    func signatures() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let webhook = Self.body([Self.text("01HF0000000000000000000020", messageID: "7001", "こんにちは")])
            try expectProblem(try await Self.post(app, webhook, secret: nil), .forbidden, "signature-invalid")
            try expectProblem(try await Self.post(app, webhook, secret: "line-retired"), .forbidden, "signature-invalid")
            var headers: HTTPFields = [.contentType: "application/json", HTTPField.Name("X-Line-Signature")!: Self.signature(webhook, secret: "line-new")]
            let tampered = try await app.client.execute(uri: "/v1/inbound/chat/line", method: .post, headers: headers,
                                                        body: ByteBuffer(string: webhook.replacingOccurrences(of: "こんにちは", with: "さようなら")))
            try expectProblem(tampered, .forbidden, "signature-invalid")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'rejected' AND provider = 'line'") == 2)
            #expect(try await app.count("SELECT count(*) FROM messages") == 0)
            #expect(try await app.count("SELECT count(*) FROM provider_events") == 0)

            // A megabyte under a made-up signature (no key needed to send it): what came in is kept, not all of it.
            let large = ByteBuffer(bytes: [UInt8](repeating: 0x41, count: 1_000_000))
            headers[HTTPField.Name("X-Line-Signature")!] = "bm90IGEgc2lnbmF0dXJl"
            try expectProblem(try await app.client.execute(uri: "/v1/inbound/chat/line", method: .post, headers: headers, body: large),
                              .forbidden, "signature-invalid")
            #expect(try await app.count(
                "SELECT count(*) FROM inbound_payloads WHERE parse_status = 'rejected' AND length(body) = 4096 AND parse_error LIKE '%the first 4096 of 1000000 bytes are kept; SHA-256 of all: %'"
            ) == 1)

            let notJSON = #"{"destination":"U0","events":[{"type":"message"}"#
            headers[HTTPField.Name("X-Line-Signature")!] = Self.signature(notJSON, secret: "line-new")
            let malformed = try await app.client.execute(uri: "/v1/inbound/chat/line", method: .post, headers: headers, body: ByteBuffer(string: notJSON))
            // Signed, so LINE's own: kept as failed and answered 200, which no redelivery could change.
            #expect(malformed.status == .ok, "\(malformed.text)")
            #expect((try malformed.json["events"] as? [[String: Any]])?.first?["result"] as? String == "failed")
            #expect(try malformed.json["inbound_id"] as? String != nil)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'failed'") == 1)

            // Wrong types are malformed too, and a body over the limit is refused before it is read.
            let wrongTypes = #"{"destination":"U0","events":{"type":"message"}}"#
            headers[HTTPField.Name("X-Line-Signature")!] = Self.signature(wrongTypes, secret: "line-new")
            let wrong = try await app.client.execute(uri: "/v1/inbound/chat/line", method: .post, headers: headers, body: ByteBuffer(string: wrongTypes))
            #expect(wrong.status == .ok && wrong.text.contains("A LINE webhook body is a JSON object"), "\(wrong.text)")
            let huge = Self.body([Self.text("01HF0000000000000000000021", messageID: "7002", String(repeating: "あ", count: 400_000))])
            try expectProblem(try await Self.post(app, huge), .contentTooLarge, "payload-too-large")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'failed'") == 2)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 5)

            // LINE's "Verify" button posts an empty event list.
            let verification = try await Self.post(app, #"{"destination":"U0","events":[]}"#)
            #expect(verification.status == .ok)
            #expect(try Self.results(verification) == [])

            try expectProblem(
                try await app.client.execute(uri: "/v1/inbound/chat/kakao", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}")),
                .notFound, "unknown-provider")
        }
        try await TestApp.run { app in
            let refused = try await Self.post(app, Self.body([]))
            try expectProblem(refused, .forbidden, "signature-invalid")
            #expect(refused.text.contains("MADOGUCHI_LINE_CHANNEL_SECRETS"))
        }
    }

    @Test("unfollow marks the LINE identity undeliverable and a later follow clears it, not an earlier one redelivered; unsend marks the message withdrawn; media are references")
    func lifecycle() async throws {
        try await TestApp.run(configure: Self.configured) { app in
            let image = Self.event("01HF0000000000000000000031", type: "message",
                                   #""replyToken":"r","message":{"id":"8001","type":"image","contentProvider":{"type":"line"}}"#)
            let sticker = Self.event("01HF0000000000000000000032", type: "message",
                                     #""replyToken":"r","message":{"id":"8002","type":"sticker","packageId":"446","stickerId":"1988","keywords":["Please","Thanks"]}"#)
            let response = try await Self.post(app, Self.body([image, sticker]))
            #expect(try Self.results(response) == ["taken", "taken"], "\(response.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = '[image]' AND metadata->>'line_content_id' = '8001'") == 1)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = '[sticker: Please, Thanks]'") == 1)

            let unsend = try await Self.post(app, Self.body([Self.event("01HF0000000000000000000033", type: "unsend", #""unsend":{"messageId":"8001"}"#)]))
            #expect(try Self.results(unsend) == ["recorded"])
            #expect(try await app.count("SELECT count(*) FROM messages WHERE metadata ? 'unsent_at'") == 1)
            // What the agent sees: the withdrawn message stays, marked.
            let ticket = try #require(((try response.json["events"] as? [[String: Any]])?.first?["inbound"] as? [String: Any])?["ticket_id"] as? String)
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: try await app.keySecret(.supervisor))
            let items = (try timeline.json["items"] as? [[String: Any]]) ?? []
            #expect(items.map { $0["withdrawn_at"] != nil } == [true, false], "\(timeline.text)")

            _ = try await Self.post(app, Self.body([Self.event("01HF0000000000000000000034", type: "unfollow")]))
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'line' AND undeliverable_at IS NOT NULL") == 1)
            // A follow from before the unfollow, redelivered late, leaves the mark: the user has blocked us since.
            _ = try await Self.post(app, Self.body([Self.event("01HF0000000000000000000036", type: "follow", redelivery: true)]))
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'line' AND undeliverable_at IS NOT NULL") == 1)
            let now = Int64(Date().timeIntervalSince1970 * 1000) + 1000
            _ = try await Self.post(app, Self.body([Self.event("01HF0000000000000000000035", type: "follow", timestamp: now)]))
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE kind = 'line' AND undeliverable_at IS NULL") == 1)
        }
    }

    @Test("mail, then SMS from the phone given on a members' web form, then LINE once the order system linked the id: one customer, one timeline, in order")
    func crossChannel() async throws {
        try await TestApp.run(configure: {
            Self.configured(&$0)
            ProviderSmsWebhookTests.twilioConfigured(&$0)
        }) { app in
            let gateway = try await app.keySecret(.gateway)
            let orderSystem = try await app.keySecret(.orderSystem)
            let mail = try await app.postMail(gateway, testMail(subject: "注文の件", id: "x1@example.jp"))
            let customer = try #require(try mail.json["customer_id"] as? String)
            let form = try await app.request(.post, "/v1/inbound/webform", key: gateway,
                                             json: #"{"form_id":"contact","submission_id":"x2","email":"hanako@example.jp","phone":"080-1111-2222","contacts_verified":true,"body":"電話番号です"}"#)
            #expect(try form.json["customer_id"] as? String == customer)
            let sms = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SMx", from: "+818011112222", body: "SMSです"), token: "new-token")
            #expect(((try sms.json["events"] as? [[String: Any]])?.first?["inbound"] as? [String: Any])?["customer_id"] as? String == customer, "\(sms.text)")

            let link = try await app.request(.post, "/v1/customers/\(customer)/identities", key: orderSystem, json: #"{"kind":"line","value":"\#(Self.user)"}"#)
            #expect(link.status == .created, "\(link.text)")
            let line = try await Self.post(app, Self.body([Self.text("01HF0000000000000000000040", messageID: "9001", "LINEからです")]))
            #expect(((try line.json["events"] as? [[String: Any]])?.first?["inbound"] as? [String: Any])?["customer_id"] as? String == customer, "\(line.text)")

            let timeline = try await app.request(.get, "/v1/customers/\(customer)/timeline", key: orderSystem)
            let messages = ((try timeline.json["items"] as? [[String: Any]]) ?? []).filter { $0["kind"] as? String == "message" }
            #expect(messages.map { $0["channel"] as? String } == ["chat", "sms", "webform", "email"])
            #expect(try await app.count("SELECT count(*) FROM customers") == 1)
        }
    }
}
