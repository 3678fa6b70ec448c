import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("SMS in: one customer by phone number, one conversation, never doubled", .timeLimit(.minutes(15)))
struct InboundSmsTests {
    static func sms(_ id: String, from: String = "090-1234-5678", body: String = "届きません") -> String {
        #"{"provider":"twilio","provider_message_id":"\#(id)","from":"\#(from)","to":"+815012345678","body":"\#(body)"}"#
    }

    @Test("the same SMS delivered 10 times at once is one message")
    func concurrentRedelivery() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let statuses = try await app.postConcurrently(
                "/v1/inbound/sms", headers: [.authorization: "Bearer \(gateway)", .contentType: "application/json"],
                bodies: Array(repeating: ByteBuffer(string: Self.sms("SM1")), count: 10))
            #expect(statuses.filter { $0 == .created }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == .ok }.count == 9, "\(statuses)")
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE channel = 'sms'") == 10)
        }
    }

    @Test("consecutive messages join the conversation; a short code is kept as an unverified sender; bad fields are named")
    func conversation() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SM1"))
            #expect(first.status == .created, "\(first.text)")
            let second = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SM2", from: "+81 90 1234 5678", body: "まだです"))
            #expect(try second.json["ticket_id"] as? String == (try first.json["ticket_id"] as? String))
            #expect(try second.json["threading_reason"] as? String == "sms-conversation")

            let shortCode = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SM3", from: "AMAZON"))
            #expect(try shortCode.json["flags"] as? [String] == ["unverified-sender"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'AMAZON'") == 1)

            let bad = try await app.request(.post, "/v1/inbound/sms", key: gateway,
                                            json: #"{"provider":"Twilio!","provider_message_id":" ","from":"x","body":"\u0000"}"#)
            try expectProblem(bad, .unprocessableContent, "validation-failed")
            let pointers = Set(((try bad.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String })
            #expect(pointers == ["/provider", "/provider_message_id", "/body"])
            try expectProblem(try await app.request(.post, "/v1/inbound/sms", key: gateway, json: #"{"provider":"twilio"}"#),
                                           .badRequest, "malformed-body")
            #expect(try await app.count("SELECT count(*) FROM messages") == 3)
        }
    }

    @Test("a text answering ours continues the ticket, however long ago the customer last texted; a week quiet on both sides starts a new one")
    func answerKeepsConversation() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SA1"))
            let ticket = try #require(try first.json["ticket_id"] as? String)
            let agent = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(ticket)/replies", key: agent, json: #"{"body":"お調べしてご連絡します。"}"#)
            let reply = try #require(try draft.json["id"] as? String, "\(draft.text)")
            let sent = try await app.request(.post, "/v1/replies/\(reply)/send", key: agent,
                                             json: #"{"last_seen_message_id":"\#(try #require(try first.json["message_id"] as? String))"}"#)
            #expect(sent.status == .ok, "\(sent.text)")
            // The customer texted eight days ago (the window is seven); our answer went out just now.
            try await app.execute("UPDATE messages SET created_at = now() - interval '8 days' WHERE direction = 'inbound'")
            try await app.execute("UPDATE tickets SET created_at = now() - interval '8 days', last_customer_message_at = now() - interval '8 days'")
            let answer = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SA2", body: "ありがとうございます"))
            #expect(try answer.json["ticket_id"] as? String == ticket, "\(answer.text)")

            try await app.execute("UPDATE messages SET created_at = now() - interval '9 days'")
            try await app.execute("UPDATE tickets SET created_at = now() - interval '9 days', last_customer_message_at = now() - interval '9 days'")
            let later = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SA3", body: "別の注文です"))
            #expect(try later.json["ticket_id"] as? String != ticket)
        }
    }

    @Test("the customer's text answering the SMS an agent sent from a mail ticket (its mail bounced) continues that ticket")
    func answerToTextFromMailTicket() async throws {
        try await TestApp.run { app in
            let conversation = try await DeliveryTests.customerWrites(app, from: "hanako@docomo.ne.jp")
            let ticket = try await app.request(.get, "/v1/tickets/\(conversation.ticket)", key: conversation.agent).json
            let customer = try #require(ticket["customer_id"] as? String)
            #expect(try await app.request(.post, "/v1/customers/\(customer)/identities", key: try await app.keySecret(.orderSystem),
                                          json: #"{"kind":"phone","value":"090-1234-5678"}"#).status == .created)
            // Before anyone texted them, a text of theirs is a conversation of its own.
            let unrelated = try await app.request(.post, "/v1/inbound/sms", key: try await app.keySecret(.gateway), json: Self.sms("SX0", body: "別件です"))
            #expect(try unrelated.json["ticket_id"] as? String != conversation.ticket)
            let other = try #require(try unrelated.json["ticket_id"] as? String)
            try await app.execute("UPDATE tickets SET status = 'closed', created_at = now() - interval '8 days', last_customer_message_at = now() - interval '8 days' WHERE id = \(UUID(uuidString: other)!)")
            try await app.execute("UPDATE messages SET created_at = now() - interval '8 days' WHERE ticket_id = \(UUID(uuidString: other)!)")

            let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                              json: #"{"channel":"sms","recipients":["+819012345678"],"body":"メールが届かないためSMSでご連絡しました。"}"#)
            #expect(draft.status == .created, "\(draft.text)")
            let reply = try #require(try draft.json["id"] as? String)
            let sent = try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                             json: #"{"last_seen_message_id":"\#(try await DeliveryTests.newestMessage(conversation))"}"#)
            #expect(sent.status == .ok, "\(sent.text)")

            let answer = try await app.request(.post, "/v1/inbound/sms", key: try await app.keySecret(.gateway), json: Self.sms("SX1", body: "gmailに送ってください"))
            #expect(answer.status == .created, "\(answer.text)")
            #expect(try answer.json["ticket_id"] as? String == conversation.ticket, "\(answer.text)")
            #expect(try answer.json["threading_reason"] as? String == "sms-conversation")
        }
    }

    @Test("a customer who mails, then gives a phone on a members' web form, then texts from it: one customer, one timeline, in order")
    func crossChannel() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let mail = try await app.postMail(gateway, testMail(subject: "注文の件", id: "x1@example.jp"))
            let customer = try #require(try mail.json["customer_id"] as? String)
            let form = try await app.request(.post, "/v1/inbound/webform", key: gateway,
                                             json: #"{"form_id":"contact","submission_id":"x2","email":"hanako@example.jp","phone":"080-1111-2222","contacts_verified":true,"body":"電話番号です"}"#)
            #expect(try form.json["customer_id"] as? String == customer)
            let sms = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: Self.sms("SMx", from: "０８０－１１１１－２２２２", body: "SMSです"))
            #expect(try sms.json["customer_id"] as? String == customer, "\(sms.text)")

            let timeline = try await app.request(.get, "/v1/customers/\(customer)/timeline", key: try await app.keySecret(.orderSystem))
            let messages = ((try timeline.json["items"] as? [[String: Any]]) ?? []).filter { $0["kind"] as? String == "message" }
            #expect(messages.map { $0["channel"] as? String } == ["sms", "webform", "email"])
        }
    }
}
