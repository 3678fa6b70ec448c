import Foundation
import Synchronization
import HTTPTypes
import PostgresNIO
import Testing
@testable import Madoguchi

/// Replies by SMS and LINE, through the same outbox, to loopback servers speaking each provider's
/// documented sending API.
@Suite("Replies reach the customer by SMS and LINE", .timeLimit(.minutes(15)))
struct ProviderDeliveryTests {
    /// `providerTimeout` stays at a production-like 30 s unless a test is about the timeout itself: on
    /// a loaded two-core machine a loopback answer has taken longer than 5 s.
    static func configure(twilio: FakeProvider? = nil, vonage: FakeProvider? = nil, line: FakeProvider? = nil, chatGateway: FakeProvider? = nil,
                          providerTimeout: Duration = .seconds(30)) -> (inout Configuration) -> Void {
        { configuration in
            if let chatGateway { configuration.delivery.chatGateway = .init(url: chatGateway.url + "/replies", secret: Self.gatewaySecret) }
            if let twilio {
                configuration.delivery.twilio = .init(accountSID: "AC0123", authToken: "token-1", from: "+815012345678", apiURL: twilio.url)
            }
            if let vonage {
                configuration.delivery.vonage = .init(apiKey: "key", apiSecret: "secret", from: "Shop", apiURL: vonage.url)
            }
            if let line { configuration.delivery.line = .init(channelAccessToken: "line-token", apiURL: line.url) }
            configuration.providers.publicURL = "https://support.example.jp"
            configuration.providers.twilioAuthTokens = ["token-1"]
            configuration.delivery.pollInterval = .milliseconds(100)
            configuration.delivery.retryBase = .milliseconds(200)
            configuration.delivery.retryCap = .seconds(1)
            configuration.delivery.providerTimeout = providerTimeout
        }
    }

    static let gatewaySecret = "whsec_" + Data(Array("chat-gateway-secret-0123".utf8)).base64EncodedString()

    /// A customer writes through a chat gateway (provider-neutral endpoint) and an agent claims the ticket.
    static func customerChats(_ app: TestApp, user: String) async throws -> DeliveryTests.Conversation {
        let gateway = try await app.keySecret(.gateway)
        let chat = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: InboundChatTests.chat("m-\(user)", user: user, text: "返品できますか"))
        #expect(chat.status == .created, "\(chat.text)")
        let ticket = try #require(try chat.json["ticket_id"] as? String)
        let agent = try await app.keySecret(.agent)
        #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent).status == .ok)
        return .init(app: app, agent: agent, supervisor: try await app.keySecret(.supervisor), ticket: ticket,
                     lastMessage: try #require(try chat.json["message_id"] as? String), customerMessageID: "")
    }

    /// A customer texts in (provider-neutral endpoint) and an agent claims the SMS ticket.
    static func customerTexts(_ app: TestApp, from phone: String = "+819011112222") async throws -> DeliveryTests.Conversation {
        let gateway = try await app.keySecret(.gateway)
        let sms = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: """
            {"provider":"twilio","provider_message_id":"SMin\(UUID().uuidString.prefix(6))","from":"\(phone)","body":"荷物が届きません"}
            """)
        #expect(sms.status == .created, "\(sms.text)")
        let ticket = try #require(try sms.json["ticket_id"] as? String)
        let agent = try await app.keySecret(.agent)
        #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent).status == .ok)
        return .init(app: app, agent: agent, supervisor: try await app.keySecret(.supervisor), ticket: ticket,
                     lastMessage: try #require(try sms.json["message_id"] as? String), customerMessageID: "")
    }

    /// A customer known by their LINE user id who wrote on a chat ticket, claimed by an agent.
    /// `kind` `chat` with `line:C…` is a LINE group known only as the conversation.
    static func customerOnLine(_ app: TestApp, name: String, userID: String, kind: String = "line") async throws -> DeliveryTests.Conversation {
        let customer = try await app.customer(name: name)
        try await app.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(customer), \(kind), \(userID))")
        let ticket = try await app.insertReturningID("INSERT INTO tickets (customer_id, subject, channel) VALUES (\(customer), 'LINE', 'chat') RETURNING id")
        let message = try await app.insertReturningID("""
            INSERT INTO messages (ticket_id, customer_id, direction, channel, provider, body_text) VALUES (\(ticket), \(customer), 'inbound', 'chat', 'line', 'こんにちは')
            RETURNING id
            """)
        let agent = try await app.keySecret(.agent)
        #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent).status == .ok)
        return DeliveryTests.Conversation(app: app, agent: agent, supervisor: try await app.keySecret(.supervisor),
                                          ticket: ticket.uuidString.lowercased(), lastMessage: message.uuidString.lowercased(), customerMessageID: "")
    }

    @Test("Twilio: one Messages request with the number, text and status callback; the SID is kept and its status callback moves the delivery on")
    func twilio() async throws {
        let twilio = try await FakeProvider { _, _ in
            .init(status: .created, body: #"{"sid":"SM9000","status":"queued","to":"+819011112222"}"#)
        }
        try await TestApp.run(configure: Self.configure(twilio: twilio)) { app in
            let conversation = try await Self.customerTexts(app)
            let reply = try await DeliveryTests.answer(conversation, "本日発送しました。")
            let sent = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            let request = try #require(twilio.requests.first)
            #expect(twilio.requests.count == 1)
            #expect(request.path == "/2010-04-01/Accounts/AC0123/Messages.json")
            #expect(request.headers[.authorization] == "Basic " + Data("AC0123:token-1".utf8).base64EncodedString())
            #expect(request.form["To"] == "+819011112222")
            #expect(request.form["From"] == "+815012345678")
            #expect(request.form["Body"] == "本日発送しました。")
            #expect(request.body.allSatisfy { $0 < 0x80 }, "form-encoded: the Japanese text percent-encoded, not raw bytes")
            #expect(request.form["StatusCallback"] == "https://support.example.jp/v1/inbound/sms/twilio/status")
            #expect((sent["delivery"] as? [String: Any])?["provider_message_id"] as? String == "SM9000")

            // Twilio reports the text delivered: the outbound message shows it.
            let status = try await ProviderRequests.postTwilio(
                app, [("MessageSid", "SM9000"), ("MessageStatus", "delivered"), ("To", "+819011112222")], path: "/v1/inbound/sms/twilio/status",
                token: "token-1")
            #expect(status.status == .ok, "\(status.text)")
            let messages = try await app.request(.get, "/v1/tickets/\(conversation.ticket)/messages", key: conversation.agent).json
            let outbound = (messages["items"] as? [[String: Any]])?.first { $0["direction"] as? String == "outbound" }
            #expect((outbound?["delivery"] as? [String: Any])?["status"] as? String == "delivered", "\(String(describing: outbound))")
        }
    }

    @Test("Twilio reports a sent text undelivered for good (30006, a landline): the reply fails and the number is marked undeliverable")
    func twilioPermanentFailureReport() async throws {
        let twilio = try await FakeProvider { _, _ in .init(status: .created, body: #"{"sid":"SMland","status":"queued"}"#) }
        try await TestApp.run(configure: Self.configure(twilio: twilio)) { app in
            let conversation = try await Self.customerTexts(app)
            let reply = try await DeliveryTests.answer(conversation, "本日発送しました。")
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, reply)) == "sent")
            let report = try await ProviderRequests.postTwilio(
                app, [("MessageSid", "SMland"), ("MessageStatus", "undelivered"), ("ErrorCode", "30006"), ("To", "+819011112222")],
                path: "/v1/inbound/sms/twilio/status", token: "token-1")
            #expect(report.status == .ok, "\(report.text)")
            let failed = try await app.request(.get, "/v1/replies/\(reply)", key: conversation.agent).json
            #expect(failed["state"] as? String == "failed", "\(failed)")
            #expect(DeliveryTests.state(failed) == "failed")
            // The number itself reads failed, with the provider's words, not the `sent` of the hand-over.
            let recipients = (failed["delivery"] as? [String: Any])?["recipients"] as? [[String: Any]]
            #expect(recipients?.first?["status"] as? String == "failed", "\(failed)")
            #expect((recipients?.first?["reply"] as? String)?.contains("30006") == true, "\(failed)")
            #expect(try await app.count("""
                SELECT count(*) FROM customer_identities WHERE value = '+819011112222' AND undeliverable_at IS NOT NULL
                """) == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'identity.undeliverable'") == 1)
            // A second report of the same failure changes nothing more.
            _ = try await ProviderRequests.postTwilio(
                app, [("MessageSid", "SMland"), ("MessageStatus", "undelivered"), ("ErrorCode", "30006"), ("To", "+819011112222")],
                path: "/v1/inbound/sms/twilio/status", token: "token-1")
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'reply.failed'") == 1)
        }
    }

    @Test("Vonage's receipt that a text failed for good (err-code 3, a number no longer active) marks the number undeliverable; a handset out of reach (2) does not; an id longer than ours is answered 200")
    func vonagePermanentFailureReport() async throws {
        let sent = Mutex(0)
        let vonage = try await FakeProvider { _, _ in
            let id = sent.withLock { $0 += 1; return $0 }
            return .init(status: .ok, body: #"{"message-count":"1","messages":[{"to":"819011112222","message-id":"V-\#(id)","status":"0"}]}"#)
        }
        try await TestApp.run(configure: { configuration in
            Self.configure(vonage: vonage)(&configuration)
            configuration.providers.vonageAllowUnsigned = true
        }) { app in
            let conversation = try await Self.customerTexts(app)
            func receipt(_ messageID: String, _ code: String) async throws {
                let response = try await ProviderRequests.postVonage(
                    app, ["messageId": messageID, "status": "failed", "err-code": code, "msisdn": "819011112222"], path: "/v1/inbound/sms/vonage/status")
                #expect(response.status == .ok, "\(response.text)")
            }
            let first = try await DeliveryTests.answer(conversation, "本日発送しました。")
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, first)) == "sent")
            try await receipt("V-1", "2")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE undeliverable_at IS NOT NULL") == 0)
            let second = try await DeliveryTests.answer(conversation, "もう一度お送りします。")
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, second)) == "sent")
            try await receipt("V-2", "3")
            #expect(try await app.count("""
                SELECT count(*) FROM customer_identities WHERE value = '+819011112222' AND undeliverable_at IS NOT NULL
                """) == 1)
            // A receipt naming an id longer than any of ours is answered 200 (a 500 made Vonage send it
            // for days) and names no message; the request is kept.
            for length in [1_200, 3_000] {
                try await receipt(String(repeating: "V", count: length), "3")
            }
            #expect(try await app.count("SELECT count(*) FROM sms_reports_before_send") == 0)
        }
    }

    @Test("Twilio reports the text undelivered before its own answer to our request was recorded: the report waits and is applied with the send")
    func twilioReportBeforeSend() async throws {
        let twilio = try await FakeProvider { _, _ in
            // Long enough for the early report to be posted while the answer is on its way, on a loaded machine too.
            .init(status: .created, body: #"{"sid":"SMearly","status":"queued"}"#, delay: .seconds(8))
        }
        try await TestApp.run(configure: Self.configure(twilio: twilio)) { app in
            let conversation = try await Self.customerTexts(app)
            let reply = try await DeliveryTests.answer(conversation, "本日発送しました。")
            _ = try await ChildProcess.eventually(timeout: .seconds(60)) { twilio.requests.count == 1 }
            let early = try await ProviderRequests.postTwilio(
                app, [("MessageSid", "SMearly"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003"), ("To", "+819011112222")],
                path: "/v1/inbound/sms/twilio/status", token: "token-1")
            #expect(early.status == .ok, "\(early.text)")
            // Applied with the send: the reply is failed, as one the provider refused at once is.
            let failed = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(failed) == "failed", "\(failed)")
            #expect(failed["state"] as? String == "failed")
            let listed = try await app.request(.get, "/v1/replies?state=failed", key: conversation.supervisor).json["items"] as? [[String: Any]]
            #expect(listed?.compactMap { $0["id"] as? String } == [reply])
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'reply.failed' AND data->>'error' LIKE '%undelivered (error 30003)'") == 1)
            // 30003 (the handset out of reach) says nothing lasting about the number.
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE undeliverable_at IS NOT NULL") == 0)
            let messages = try await app.request(.get, "/v1/tickets/\(conversation.ticket)/messages", key: conversation.agent).json
            let outbound = (messages["items"] as? [[String: Any]])?.first { $0["direction"] as? String == "outbound" }
            let delivery = outbound?["delivery"] as? [String: Any]
            #expect(delivery?["status"] as? String == "undelivered", "\(String(describing: outbound))")
            #expect(delivery?["error_code"] as? String == "30003")
            #expect(try await app.count("SELECT count(*) FROM sms_reports_before_send") == 0, "applied, then gone")
            // The failure stands: the ticket keeps its flag, and no `reply.delivered` follows the `reply.failed`.
            let ticket = try await app.request(.get, "/v1/tickets/\(conversation.ticket)", key: conversation.agent).json
            #expect((ticket["tags"] as? [String])?.contains("delivery-failed") == true, "\(ticket)")
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'reply.delivered' AND data->>'reply_id' = \(reply)
                """) == 0)
        }
    }

    @Test("Twilio gives no answer in time: the text may exist, so the reply is held; one request only")
    func twilioNoAnswer() async throws {
        let twilio = try await FakeProvider { _, _ in .init(status: .created, body: #"{"sid":"SMlate"}"#, delay: .seconds(12)) }
        try await TestApp.run(configure: Self.configure(twilio: twilio, providerTimeout: .seconds(2))) { app in
            let conversation = try await Self.customerTexts(app)
            let reply = try await DeliveryTests.answer(conversation, "確認します。")
            let held = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(held) == "held", "\(held)")
            try await Task.sleep(for: .seconds(1))
            #expect(twilio.requests.count == 1)
        }
    }

    @Test("an answer that may come after the text was made (Twilio 500, Vonage 504, a Vonage 200 we cannot read) holds the reply after one request; Twilio 503 is retried")
    func providerErrorsAfterTheText() async throws {
        let twilio = try await FakeProvider { request, index in
            switch request.form["To"] {
            case "+819011112222": .init(status: .internalServerError, body: #"{"code":20500,"message":"Internal Server Error"}"#)
            default: index == 1 ? .init(status: .serviceUnavailable, body: #"{"code":20503,"message":"Service Unavailable"}"#)
                : .init(status: .created, body: #"{"sid":"SMok","status":"queued"}"#)
            }
        }
        try await TestApp.run(configure: Self.configure(twilio: twilio)) { app in
            let internalError = try await Self.customerTexts(app)
            let held = try await DeliveryTests.delivery(internalError, try await DeliveryTests.answer(internalError, "確認します。"))
            #expect(DeliveryTests.state(held) == "held", "\(held)")
            let unavailable = try await Self.customerTexts(app, from: "+819088880000")
            let sent = try await DeliveryTests.delivery(unavailable, try await DeliveryTests.answer(unavailable, "確認します。"))
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            try await Task.sleep(for: .seconds(1))
            #expect(twilio.requests.filter { $0.form["To"] == "+819011112222" }.count == 1, "the 500 is not retried")
            #expect(twilio.requests.filter { $0.form["To"] == "+819088880000" }.count == 2, "the 503 is")
        }
        let vonage = try await FakeProvider { request, _ in
            request.form["to"] == "819011112222" ? .init(status: .gatewayTimeout, body: "upstream timed out")
                : .init(status: .ok, body: "<html>maintenance</html>")
        }
        try await TestApp.run(configure: Self.configure(vonage: vonage)) { app in
            for phone in ["+819011112222", "+819088880000"] {
                let conversation = try await Self.customerTexts(app, from: phone)
                let held = try await DeliveryTests.delivery(conversation, try await DeliveryTests.answer(conversation, "確認します。"))
                #expect(DeliveryTests.state(held) == "held", "\(phone): \(held)")
            }
            try await Task.sleep(for: .seconds(1))
            #expect(vonage.requests.count == 2)
        }
    }

    @Test("a text to two numbers whose second request gets no answer is held with the first kept as sent: a resend texts the second number only")
    func twilioHeldKeepsSettled() async throws {
        let twilio = try await FakeProvider { request, _ in
            request.form["To"] == "+819033334444" && request.form["Body"] == "確認します。"
                ? .init(status: .created, body: #"{"sid":"SMlate"}"#, delay: .seconds(15))
                : .init(status: .created, body: #"{"sid":"SM\#(UUID().uuidString.prefix(6))","status":"queued"}"#)
        }
        // 5 s to answer: the first number's prompt answer must be in time on a loaded machine (with
        // 2 s it was once late too, so held unsettled, and the resend rightly texted it again).
        try await TestApp.run(configure: Self.configure(twilio: twilio, providerTimeout: .seconds(5))) { app in
            let conversation = try await Self.customerTexts(app)
            try await app.execute("""
                INSERT INTO customer_identities (customer_id, kind, value)
                SELECT customer_id, 'phone', '+819033334444' FROM tickets WHERE id = \(UUID(uuidString: conversation.ticket)!)
                """)
            let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                              json: #"{"body":"確認します。","recipients":["+819011112222","+819033334444"]}"#)
            #expect(draft.status == .created, "\(draft.text)")
            let reply = try #require(try draft.json["id"] as? String)
            let sent = try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                             json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#)
            #expect(sent.status == .ok, "\(sent.text)")
            let held = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(held) == "held", "\(held)")
            #expect(twilio.requests.map { $0.form["To"] } == ["+819011112222", "+819033334444"])

            let resend = try await app.request(.post, "/v1/replies/\(reply)/delivery", key: conversation.supervisor,
                                               json: #"{"action":"resend","comment":"the second number never got it"}"#)
            #expect(resend.status == .ok, "\(resend.text)")
            _ = try await ChildProcess.eventually(timeout: .seconds(60)) { twilio.requests.count >= 3 }
            try await Task.sleep(for: .seconds(1))
            #expect(twilio.requests.map { $0.form["To"] } == ["+819011112222", "+819033334444", "+819033334444"], "the first number is not texted twice")
        }
    }

    @Test("LINE keeps a retry key 24 hours: a push still failing later than that is held for a person, not pushed again; a resend pushes")
    func lineRetryWindow() async throws {
        let line = try await FakeProvider { _, _ in .init(status: .internalServerError, body: #"{"message":"An error occurred"}"#) }
        try await TestApp.run(configure: Self.configure(line: line)) { app in
            let conversation = try await Self.customerOnLine(app, name: "ライン 花子", userID: "U4af4980630")
            let reply = try await DeliveryTests.answer(conversation, "確認いたします。")
            _ = try await ChildProcess.eventually(timeout: .seconds(60)) { !line.requests.isEmpty }
            // As if the first push had been a day ago.
            try await app.execute("UPDATE outbox SET first_attempt_at = now() - interval '25 hours'")
            let held = try await DeliveryTests.delivery(conversation, reply, until: ["held", "failed", "sent"])
            #expect(DeliveryTests.state(held) == "held", "\(held)")
            #expect(((held["delivery"] as? [String: Any])?["held_reason"] as? String)?.contains("24 hours") == true, "\(held)")
            let pushes = line.requests.count
            try await Task.sleep(for: .seconds(1))
            #expect(line.requests.count == pushes, "nothing pushed once held")

            let resend = try await app.request(.post, "/v1/replies/\(reply)/delivery", key: conversation.supervisor, json: #"{"action":"resend"}"#)
            #expect(resend.status == .ok, "\(resend.text)")
            _ = try await ChildProcess.eventually(timeout: .seconds(30)) { line.requests.count > pushes }
        }
    }

    @Test("an SMS recipient typed the Japanese way (090-1111-2222) is the customer's number; a stranger's is refused by name")
    func typedNumber() async throws {
        try await TestApp.run { app in
            let conversation = try await Self.customerTexts(app)
            let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                              json: #"{"body":"確認します。","recipients":["090-1111-2222"]}"#)
            #expect(draft.status == .created, "\(draft.text)")
            #expect(try draft.json["recipients"] as? [String] == ["+819011112222"])
            let reply = try #require(try draft.json["id"] as? String)
            let stranger = try await app.request(.patch, "/v1/replies/\(reply)", key: conversation.agent, json: #"{"recipients":["080 9999 0000"]}"#)
            #expect(try stranger.json["recipients"] as? [String] == ["+818099990000"], "\(stranger.text)")
            let send = try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                             json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#)
            try expectProblem(send, .unprocessableContent, "unknown-recipient")
            // A text carries no file: refused when attached, not shown as sent while the customer gets words alone.
            let file = try await app.request(.post, "/v1/replies/\(reply)/attachments", key: conversation.agent,
                                             json: #"{"filename":"請求書.pdf","media_type":"application/pdf","content_base64":"JVBERi0="}"#)
            try expectProblem(file, .unprocessableContent, "validation-failed")
            #expect(file.text.contains("/filename") && file.text.contains("sms"), "\(file.text)")
            #expect(try await app.count("SELECT count(*) FROM reply_attachments") == 0)
        }
    }

    @Test("a text to a Japanese landline is refused before it reaches the provider; a mobile on record is chosen over it")
    func landline() async throws {
        try await TestApp.run { app in
            let conversation = try await Self.customerTexts(app, from: "03-1234-5678")
            let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent, json: #"{"body":"確認します。"}"#)
            #expect(try draft.json["recipients"] as? [String] == ["+81312345678"], "\(draft.text)")
            let reply = try #require(try draft.json["id"] as? String)
            let send = try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                             json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#)
            try expectProblem(send, .unprocessableContent, "not-a-mobile-number")
            #expect(send.text.contains("03") && send.text.contains("landline"), "\(send.text)")
            #expect(try await app.count("SELECT count(*) FROM outbox") == 0)

            // The customer's mobile, added later, is where the next text goes by default; the
            // landline written out is still refused.
            try await app.execute("""
                INSERT INTO customer_identities (customer_id, kind, value)
                SELECT customer_id, 'phone', '+819033334444' FROM tickets WHERE id = \(UUID(uuidString: conversation.ticket)!)
                """)
            let second = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent, json: #"{"body":"確認します。"}"#)
            #expect(try second.json["recipients"] as? [String] == ["+819033334444"], "\(second.text)")
            let named = try await app.request(.patch, "/v1/replies/\(try #require(try second.json["id"] as? String))", key: conversation.agent,
                                              json: #"{"recipients":["+819033334444","03-1234-5678"]}"#)
            #expect(named.status == .ok, "\(named.text)")
            let both = try await app.request(.post, "/v1/replies/\(try #require(try second.json["id"] as? String))/send", key: conversation.agent,
                                             json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#)
            try expectProblem(both, .unprocessableContent, "not-a-mobile-number")
        }
    }

    @Test("a text longer than an SMS can carry is refused at the send, not failed by the provider afterwards")
    func tooLongForSMS() async throws {
        try await TestApp.run { app in
            let conversation = try await Self.customerTexts(app, from: "090-1234-5678")
            // 1,600 UTF-16 units pass; one emoji more (two units) does not.
            let fits = String(repeating: "あ", count: 1598) + "🙇"
            for (body, refused) in [(fits, false), (fits + "🙇", true)] {
                let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                                  json: String(decoding: try JSONSerialization.data(withJSONObject: ["body": body]), as: UTF8.self))
                let reply = try #require(try draft.json["id"] as? String)
                let send = try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                                 json: #"{"last_seen_message_id":"\#(try await DeliveryTests.newestMessage(conversation))"}"#)
                if refused {
                    try expectProblem(send, .unprocessableContent, "too-long-for-sms")
                    #expect(send.text.contains("1602"), "\(send.text)")
                } else {
                    #expect(send.status == .ok, "\(send.text)")
                }
            }
            #expect(try await app.count("SELECT count(*) FROM outbox") == 1)
        }
    }

    @Test("a LINE reply longer than one push carries is refused at the send, not cut short by the push")
    func tooLongForLINE() async throws {
        try await TestApp.run { app in
            let conversation = try await Self.customerOnLine(app, name: "長文", userID: "U" + String(repeating: "a", count: 32))
            let line = String(repeating: "あ", count: 4999) + "\n"
            for (body, refused) in [(String(repeating: line, count: 5), false), (String(repeating: line, count: 6), true)] {
                let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                                  json: String(decoding: try JSONSerialization.data(withJSONObject: ["body": body]), as: UTF8.self))
                let reply = try #require(try draft.json["id"] as? String, "\(draft.text)")
                let send = try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                                 json: #"{"last_seen_message_id":"\#(try await DeliveryTests.newestMessage(conversation))"}"#)
                if refused {
                    try expectProblem(send, .unprocessableContent, "too-long-for-line")
                } else {
                    #expect(send.status == .ok, "\(send.text.prefix(500))")
                }
            }
            #expect(try await app.count("SELECT count(*) FROM outbox") == 1)
        }
    }

    @Test("Twilio refuses an invalid number (21211): the reply fails and the number is marked undeliverable; a 429 is retried; so is our own sender refused (21606), marking no number")
    func twilioRefusals() async throws {
        let senderRefused = Mutex(false)
        let twilio = try await FakeProvider { request, index in
            if request.form["To"] == "+819099990000" {
                return .init(status: .badRequest, body: #"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#)
            }
            if request.form["To"] == "+819077770000", !senderRefused.withLock({ refused in defer { refused = true }; return refused }) {
                return .init(status: .badRequest, body: #"{"code":21606,"message":"The 'From' phone number provided is not a valid message-capable Twilio phone number.","status":400}"#)
            }
            return index == 1 ? .init(status: .tooManyRequests, body: #"{"code":20429,"message":"Too Many Requests"}"#)
                : .init(status: .created, body: #"{"sid":"SMok","status":"queued"}"#)
        }
        try await TestApp.run(configure: Self.configure(twilio: twilio)) { app in
            let invalid = try await Self.customerTexts(app, from: "+819099990000")
            let failedReply = try await DeliveryTests.answer(invalid, "ご連絡です。")
            let failed = try await DeliveryTests.delivery(invalid, failedReply)
            #expect(DeliveryTests.state(failed) == "failed")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819099990000' AND undeliverable_at IS NOT NULL") == 1)

            let throttled = try await Self.customerTexts(app, from: "+819088880000")
            let retried = try await DeliveryTests.answer(throttled, "ご連絡です。")
            let sent = try await DeliveryTests.delivery(throttled, retried)
            #expect(DeliveryTests.state(sent) == "sent")
            #expect((sent["delivery"] as? [String: Any])?["attempts"] as? Int == 2)

            // A From that cannot send (fixed meanwhile): waited and tried again, the customer's number left alone.
            let ours = try await Self.customerTexts(app, from: "+819077770000")
            let waited = try await DeliveryTests.delivery(ours, try await DeliveryTests.answer(ours, "ご連絡です。"))
            #expect(DeliveryTests.state(waited) == "sent", "\(waited)")
            #expect((waited["delivery"] as? [String: Any])?["attempts"] as? Int == 2)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819077770000' AND undeliverable_at IS NOT NULL") == 0)
        }
    }

    @Test("Vonage: the SMS API with the number without its plus, unicode text and our reference; status 0 is sent")
    func vonage() async throws {
        let vonage = try await FakeProvider { _, _ in
            .init(status: .ok, body: #"{"message-count":"1","messages":[{"to":"819011112222","message-id":"V-77","status":"0","remaining-balance":"1.0"}]}"#)
        }
        try await TestApp.run(configure: Self.configure(vonage: vonage)) { app in
            let conversation = try await Self.customerTexts(app)
            let reply = try await DeliveryTests.answer(conversation, "本日発送しました。")
            let sent = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(sent) == "sent")
            let request = try #require(vonage.requests.first)
            #expect(request.path == "/sms/json")
            #expect(request.form["to"] == "819011112222")
            #expect(request.form["type"] == "unicode")
            #expect(request.form["text"] == "本日発送しました。")
            #expect((sent["delivery"] as? [String: Any])?["provider_message_id"] as? String == "V-77")
        }
    }

    @Test("Vonage: a long text in parts, one throttled, is sent (never again, which would send the others twice); 15, a sender we may not use, is retried and marks no number; 6 marks it")
    func vonageParts() async throws {
        let vonage = try await FakeProvider { request, index in
            switch request.form["to"] {
            case "819011112222":
                .init(status: .ok, body: #"{"message-count":"2","messages":[{"message-id":"V-1","status":"1","error-text":"Throttled"},{"message-id":"V-2","status":"0"}]}"#)
            case "819033334444" where index < 3:
                .init(status: .ok, body: #"{"message-count":"1","messages":[{"status":"15","error-text":"Illegal Sender Address - rejected"}]}"#)
            case "819055556666":
                .init(status: .ok, body: #"{"message-count":"1","messages":[{"status":"6","error-text":"Unroutable message"}]}"#)
            default:
                .init(status: .ok, body: #"{"message-count":"1","messages":[{"message-id":"V-9","status":"0"}]}"#)
            }
        }
        try await TestApp.run(configure: Self.configure(vonage: vonage)) { app in
            let parts = try await Self.customerTexts(app)
            let sent = try await DeliveryTests.delivery(parts, try await DeliveryTests.answer(parts, String(repeating: "本日発送しました。", count: 20)))
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            #expect((sent["delivery"] as? [String: Any])?["provider_message_id"] as? String == "V-2")
            #expect(vonage.requests.filter { $0.form["to"] == "819011112222" }.count == 1)

            let sender = try await Self.customerTexts(app, from: "+819033334444")
            let retried = try await DeliveryTests.delivery(sender, try await DeliveryTests.answer(sender, "ご連絡です。"))
            #expect(DeliveryTests.state(retried) == "sent", "\(retried)")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819033334444' AND undeliverable_at IS NOT NULL") == 0)

            let unroutable = try await Self.customerTexts(app, from: "+819055556666")
            let failed = try await DeliveryTests.delivery(unroutable, try await DeliveryTests.answer(unroutable, "ご連絡です。"))
            #expect(DeliveryTests.state(failed) == "failed")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819055556666' AND undeliverable_at IS NOT NULL") == 1)
        }
    }

    @Test("LINE: a group known only as its conversation gets the push in the group; an expired token (401) is retried, not failed")
    func lineGroup() async throws {
        let line = try await FakeProvider { _, index in
            index == 0 ? .init(status: .unauthorized, body: #"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#)
                : .init(status: .ok, body: #"{"sentMessages":[{"id":"461230966842064897","quoteToken":"q"}]}"#)
        }
        try await TestApp.run(configure: Self.configure(line: line)) { app in
            let group = "C1234567890abcdef1234567890abcdef"
            let conversation = try await Self.customerOnLine(app, name: "グループ", userID: "line:" + group, kind: "chat")
            let sent = try await DeliveryTests.delivery(conversation, try await DeliveryTests.answer(conversation, "皆さま、お問い合わせありがとうございます。"))
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            let push = try #require(line.requests.last)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(push.body)) as? [String: Any])
            #expect(body["to"] as? String == group)
            #expect(line.requests.count == 2)
        }
    }

    @Test("LINE: a push with a retry key; a failed push is sent again with the same key, and LINE's 409 'already accepted' counts as sent, once")
    func line() async throws {
        let line = try await FakeProvider { _, index in
            switch index {
            case 0: .init(status: .internalServerError, body: #"{"message":"An error occurred"}"#)
            default: .init(status: .conflict, headers: [HTTPField.Name("X-Line-Accepted-Request-Id")!: "req-1"],
                           body: #"{"message":"The retry key is already accepted"}"#)
            }
        }
        try await TestApp.run(configure: Self.configure(line: line)) { app in
            let conversation = try await Self.customerOnLine(app, name: "ライン 太郎", userID: "U4af4980629")
            let reply = try await DeliveryTests.answer(conversation, "お問い合わせありがとうございます。")
            let sent = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            // At least the refused push and the accepted retry (a busy machine may time one out and try again).
            #expect(line.requests.count >= 2)
            let keys = line.requests.map { $0.headers[HTTPField.Name("X-Line-Retry-Key")!] }
            #expect(keys.first != nil && keys.first! != nil && Set(keys).count == 1, "the same retry key every time: \(keys)")
            #expect(line.requests.first?.headers[.authorization] == "Bearer line-token")
            let push = try #require(line.requests.first)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(push.body)) as? [String: Any])
            #expect(body["to"] as? String == "U4af4980629")
            #expect(((body["messages"] as? [[String: Any]])?.first)?["text"] as? String == "お問い合わせありがとうございます。")
            // LINE sends no status callbacks: its answer is the send, and the message reads sent (not queued for ever).
            let messages = try await app.request(.get, "/v1/tickets/\(conversation.ticket)/messages", key: conversation.agent).json
            let outbound = (messages["items"] as? [[String: Any]])?.first { $0["direction"] as? String == "outbound" }
            #expect((outbound?["delivery"] as? [String: Any])?["status"] as? String == "sent", "\(String(describing: outbound))")
        }
    }

    @Test("a chat a gateway pushed in is answered through it: a signed post with a fixed Idempotency-Key, retried on 503, sent on 200")
    func chatGateway() async throws {
        let gateway = try await FakeProvider { _, index in
            index == 0 ? .init(status: .serviceUnavailable, body: "busy") : .init(status: .ok, body: #"{"id":"gw-msg-1"}"#)
        }
        try await TestApp.run(configure: Self.configure(chatGateway: gateway)) { app in
            let conversation = try await Self.customerChats(app, user: "u-42")
            let reply = try await DeliveryTests.answer(conversation, "はい、7日以内なら返品いただけます。")
            let sent = try await DeliveryTests.delivery(conversation, reply)
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            let posts = gateway.requests
            #expect(posts.count >= 2 && posts.allSatisfy { $0.path == "/replies" && $0.method == "POST" }, "\(posts.map(\.path))")
            let keys = Set(posts.map { $0.headers[HTTPField.Name("Idempotency-Key")!] ?? "" })
            #expect(keys.count == 1 && keys.first?.isEmpty == false, "one key for every try: \(keys)")
            let post = try #require(posts.last)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(post.body)) as? [String: Any])
            #expect(body["recipient"] as? String == "intercom:u-42")
            #expect(body["provider"] as? String == "intercom" && body["user_id"] as? String == "u-42")
            #expect(body["conversation_id"] as? String == "conv-1", "the conversation the customer wrote in")
            #expect(body["text"] as? String == "はい、7日以内なら返品いただけます。")
            #expect(body["reply_id"] as? String == reply && body["id"] as? String == keys.first)
            // Signed as outgoing webhooks are: the gateway's Standard Webhooks library verifies it.
            let id = try #require(post.headers[HTTPField.Name("webhook-id")!])
            let timestamp = try #require(Int(post.headers[HTTPField.Name("webhook-timestamp")!] ?? ""))
            let expected = StandardWebhooks.signature(id: id, timestamp: timestamp, body: post.body, secret: Self.gatewaySecret)
            #expect(expected != nil && post.headers[HTTPField.Name("webhook-signature")!] == expected)
            #expect(try await app.count("SELECT count(*) FROM outbox WHERE provider = 'intercom' AND provider_message_id = 'gw-msg-1'") == 1)
        }
    }

    @Test("""
        a chat gateway that redirects waits (its URL setting is wrong, nothing was posted); an id too long to keep is \
        left out and the reply is sent, once
        """)
    func chatGatewayOddAnswers() async throws {
        let gateway = try await FakeProvider { _, index in
            index == 0 ? .init(status: .permanentRedirect, body: "moved")
                : .init(status: .ok, body: #"{"id":"\#(String(repeating: "x", count: 4000))"}"#)
        }
        try await TestApp.run(configure: Self.configure(chatGateway: gateway)) { app in
            let conversation = try await Self.customerChats(app, user: "u-45")
            let sent = try await DeliveryTests.delivery(conversation, try await DeliveryTests.answer(conversation, "承知しました。"))
            #expect(DeliveryTests.state(sent) == "sent", "\(sent)")
            #expect(gateway.requests.count == 2)
            #expect(try await app.count("SELECT count(*) FROM outbox WHERE state = 'sent' AND provider_message_id IS NULL AND attempts = 2") == 1)
        }
    }

    @Test("a chat reply after a merge goes into the conversation the customer wrote in last, a merged duplicate's included")
    func chatReplyAfterMerge() async throws {
        let gateway = try await FakeProvider { _, _ in .init(status: .ok, body: #"{"id":"gw-msg"}"#) }
        try await TestApp.run(configure: Self.configure(chatGateway: gateway)) { app in
            let conversation = try await Self.customerChats(app, user: "u-7")
            let key = try await app.keySecret(.gateway)
            let later = try await app.request(.post, "/v1/inbound/chat", key: key,
                                              json: InboundChatTests.chat("m2-u-7", conversation: "conv-2", user: "u-7", text: "別の件です"))
            #expect(later.status == .created, "\(later.text)")
            let duplicate = try #require(try later.json["ticket_id"] as? String)
            try #require(duplicate != conversation.ticket, "a new conversation opens its own ticket")
            let merged = try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: conversation.agent,
                                               json: #"{"into_ticket_id":"\#(conversation.ticket)"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            let reply = try await DeliveryTests.answer(conversation, "どちらの件も承りました。")
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, reply)) == "sent")
            let post = try #require(gateway.requests.last)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(post.body)) as? [String: Any])
            #expect(body["conversation_id"] as? String == "conv-2", "\(body)")
        }
    }

    @Test("a chat gateway refusing a reply (422) fails it with what the gateway said; without a gateway, a non-LINE chat reply fails naming the setting")
    func chatGatewayRefuses() async throws {
        let gateway = try await FakeProvider { _, _ in .init(status: .unprocessableContent, body: #"{"detail":"conversation closed"}"#) }
        try await TestApp.run(configure: Self.configure(chatGateway: gateway)) { app in
            let conversation = try await Self.customerChats(app, user: "u-43")
            let failed = try await DeliveryTests.delivery(conversation, try await DeliveryTests.answer(conversation, "ご連絡ありがとうございます。"))
            #expect(DeliveryTests.state(failed) == "failed", "\(failed)")
            #expect("\(failed)".contains("conversation closed"), "\(failed)")
            #expect(gateway.requests.count == 1)
        }
        let line = try await FakeProvider { _, _ in .init(status: .ok, body: "{}") }
        try await TestApp.run(configure: Self.configure(line: line)) { app in
            let conversation = try await Self.customerChats(app, user: "u-44")
            let failed = try await DeliveryTests.delivery(conversation, try await DeliveryTests.answer(conversation, "ご連絡ありがとうございます。"))
            #expect(DeliveryTests.state(failed) == "failed", "\(failed)")
            #expect("\(failed)".contains("MADOGUCHI_CHAT_GATEWAY_URL"), "\(failed)")
            #expect(line.requests.isEmpty)
        }
    }
}
