import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Chat in: a conversation is one ticket while it is live, one customer across channels", .timeLimit(.minutes(15)))
struct InboundChatTests {
    static func chat(_ id: String, conversation: String = "conv-1", user: String = "u-1", text: String = "こんにちは", extra: String = "") -> String {
        #"{"provider":"intercom","conversation_id":"\#(conversation)","provider_message_id":"\#(id)","sender":{"provider_user_id":"\#(user)"\#(extra)},"text":"\#(text)"}"#
    }

    @Test("messages of one conversation join its ticket; after the idle gap, or once closed, a new one starts")
    func conversation() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("m1"))
            #expect(first.status == .created, "\(first.text)")
            let ticket = try #require(try first.json["ticket_id"] as? String)
            let second = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("m2", text: "注文番号は A-1 です"))
            #expect(try second.json["ticket_id"] as? String == ticket)
            #expect(try second.json["threading_reason"] as? String == "chat-conversation")

            try await app.execute("UPDATE messages SET created_at = now() - interval '2 hours'")
            let later = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("m3", text: "また質問です"))
            let laterTicket = try #require(try later.json["ticket_id"] as? String)
            #expect(laterTicket != ticket)
            #expect(try later.json["customer_id"] as? String == (try first.json["customer_id"] as? String))

            try await app.execute("UPDATE tickets SET status = 'closed' WHERE id = \(UUID(uuidString: laterTicket)!)")
            let afterClose = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("m4", text: "もう一つ"))
            #expect(try afterClose.json["threading_reason"] as? String == "reopened-closed")
            #expect(try afterClose.json["ticket_id"] as? String != laterTicket)
        }
    }

    @Test("""
        in a shared conversation (a LINE group, a team chat) each member's messages go on their own ticket: another \
        member's never join it, and an answer goes to the one who wrote
        """)
    func sharedConversation() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("g1", conversation: "group-1", user: "u-a", text: "注文123が届きません"))
            let aTicket = try #require(try first.json["ticket_id"] as? String)
            let other = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("g2", conversation: "group-1", user: "u-b", text: "注文999を返金してください"))
            #expect(other.status == .created, "\(other.text)")
            let bTicket = try #require(try other.json["ticket_id"] as? String)
            #expect(bTicket != aTicket, "another member's message is not the first writer's")
            #expect(try other.json["customer_id"] as? String != (try first.json["customer_id"] as? String))
            // Each goes on with their own.
            let again = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("g3", conversation: "group-1", user: "u-a", text: "まだですか"))
            #expect(try again.json["ticket_id"] as? String == aTicket)
            let bAgain = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("g4", conversation: "group-1", user: "u-b", text: "よろしく"))
            #expect(try bAgain.json["ticket_id"] as? String == bTicket)
            // B's answer is addressed to B.
            let agent = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(bTicket)/claim", key: agent).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(bTicket)/replies", key: agent, json: #"{"body":"返金いたします。"}"#)
            #expect((try draft.json["recipients"] as? [String]) == ["intercom:u-b"], "\(draft.text)")
        }
    }

    @Test("an agent's answer keeps the conversation going: the customer's reply to it joins the ticket, however long ago they last wrote")
    func answerKeepsConversation() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("a1", conversation: "conv-answer"))
            let ticket = try #require(try first.json["ticket_id"] as? String)
            let agent = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: agent).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(ticket)/replies", key: agent, json: #"{"body":"ご連絡ありがとうございます。確認します。"}"#)
            let reply = try #require(try draft.json["id"] as? String, "\(draft.text)")
            let sent = try await app.request(.post, "/v1/replies/\(reply)/send", key: agent,
                                             json: #"{"last_seen_message_id":"\#(try #require(try first.json["message_id"] as? String))"}"#)
            #expect(sent.status == .ok, "\(sent.text)")
            // The customer wrote 45 minutes ago (the idle gap is 30); our answer went out just now.
            try await app.execute("UPDATE messages SET created_at = now() - interval '45 minutes' WHERE direction = 'inbound'")
            let answer = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("a2", conversation: "conv-answer", text: "了解です"))
            #expect(try answer.json["ticket_id"] as? String == ticket, "\(answer.text)")

            // Quiet on both sides for longer than the gap: a new ticket.
            try await app.execute("UPDATE messages SET created_at = now() - interval '2 hours'")
            let later = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("a3", conversation: "conv-answer", text: "別件です"))
            #expect(try later.json["ticket_id"] as? String != ticket)
        }
    }

    @Test("a redelivered message is one message; the chat's checked email links to the customer who mailed before")
    func dedupeAndIdentity() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let mail = try await app.postMail(gateway, testMail(subject: "件名", id: "c1@example.jp"))
            let customer = try #require(try mail.json["customer_id"] as? String)
            let body = Self.chat("m1", extra: #","name":"花子","email":"hanako@example.jp","contacts_verified":true"#)
            let statuses = try await app.postConcurrently(
                "/v1/inbound/chat", headers: [.authorization: "Bearer \(gateway)", .contentType: "application/json"],
                bodies: Array(repeating: ByteBuffer(string: body), count: 5))
            #expect(statuses.filter { $0 == .created }.count == 1, "\(statuses)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE channel = 'chat'") == 1)
            let found = try await app.request(.get, "/v1/customers?email=hanako@example.jp", key: try await app.keySecret(.orderSystem))
            let identities = ((try found.json["items"] as? [[String: Any]])?.first?["identities"] as? [[String: Any]]) ?? []
            #expect(Set(identities.compactMap { $0["kind"] as? String }) == ["email", "chat"])
            #expect(((try found.json["items"] as? [[String: Any]])?.first?["id"] as? String) == customer)

            // The same message id from another user is no retry: said so, never answered with m1.
            let reused = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("m1", conversation: "conv-2", user: "u-2"))
            try expectProblem(reused, .unprocessableContent, "provider-message-id-reused")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE channel = 'chat'") == 1)
        }
    }

    @Test("an unchecked email typed into a chat links nothing: a new chat customer, a merge suggestion, the email kept with the message")
    func uncheckedEmail() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let known = try await app.customer(name: "花子", email: "hanako@example.jp")
            let chat = try await app.request(.post, "/v1/inbound/chat", key: gateway,
                                             json: Self.chat("m1", user: "u-9", extra: #","email":"hanako@example.jp","phone":"090-5555-6666""#))
            #expect(chat.status == .created, "\(chat.text)")
            let customer = try #require(try chat.json["customer_id"] as? String)
            #expect(customer != known.uuidString.lowercased())
            #expect(try chat.json["flags"] as? [String] == ["contact-not-linked", "merge-suggested"])
            // The new chat customer has its chat id only; the typed phone nobody had is not made one.
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(customer)::uuid") == 1)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819055556666'") == 0)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE customer_id = \(known)") == 1)
            let messageID = try #require(try chat.json["message_id"] as? String)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE id = \(messageID)::uuid AND metadata->>'email' = 'hanako@example.jp'") == 1)

            // The same chat user later typing a new email: their customer is known now, so it is left out.
            let later = try await app.request(.post, "/v1/inbound/chat", key: gateway,
                                              json: Self.chat("m2", user: "u-9", extra: #","email":"someone@example.jp""#))
            #expect(try later.json["customer_id"] as? String == customer)
            #expect(try later.json["flags"] as? [String] == ["contact-not-linked"])
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = 'someone@example.jp'") == 0)
        }
    }

    @Test("a message id reused for other words (a gateway counting per conversation) is refused, not answered as a retry; the same words are a retry")
    func reusedMessageID() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let first = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("0", conversation: "CHA", text: "最初の質問"))
            #expect(first.status == .created, "\(first.text)")
            let retry = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("0", conversation: "CHA", text: "最初の質問"))
            #expect(retry.status == .ok, "\(retry.text)")
            let other = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("0", conversation: "CHB", text: "まったく別の質問"))
            try expectProblem(other, .unprocessableContent, "provider-message-id-reused")
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)

            // The same for texts a gateway relays.
            let sms = { (body: String) in
                try await app.request(.post, "/v1/inbound/sms", key: gateway, json: #"{"provider":"gw","provider_message_id":"1","from":"+819011112222","body":"\#(body)"}"#)
            }
            #expect(try await sms("a").status == .created)
            #expect(try await sms("a").status == .ok)
            try expectProblem(try await sms("b - new"), .unprocessableContent, "provider-message-id-reused")
        }
    }

    @Test("bad chat messages are refused naming each field; nothing is written; a collected contact that is none is kept, flagged, not refused")
    func badInput() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let bad = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: #"""
                {"provider":"Intercom","conversation_id":" ","provider_message_id":"m","sender":{"provider_user_id":"u","email":"nope"},"text":"",
                 "attachments":[{"filename":"a.png","media_type":"image/png","url":"file:///etc/passwd"}]}
                """#)
            try expectProblem(bad, .unprocessableContent, "validation-failed")
            let pointers = Set(((try bad.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String })
            // An email the chat collected that is no email is no reason to refuse the message (below).
            #expect(pointers == ["/provider", "/conversation_id", "/attachments/0/url", "/text"])
            try expectProblem(try await app.request(.post, "/v1/inbound/chat", key: gateway, json: #"{"provider":"x"}"#), .badRequest, "malformed-body")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
            // A NUL bound for a jsonb column (an attachment's media type) is a 422 like one bound for text.
            let nul = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: #"""
                {"provider":"line","conversation_id":"c1","provider_message_id":"m1","sender":{"provider_user_id":"u1"},"text":"写真です",
                 "attachments":[{"filename":"a.png","media_type":"image/png\u0000","url":"https://files.example/a.png"}]}
                """#)
            try expectProblem(nul, .unprocessableContent, "validation-failed")
            #expect(Set(((try nul.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String }) == ["/attachments/0/media_type"],
                    "the field is named: \(nul.text)")
            #expect(try await app.count("SELECT count(*) FROM messages") == 0)
            // A provider with a line break after it is no provider (a pattern's $ let it through, a second customer).
            let newline = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: Self.chat("m-nl").replacingOccurrences(of: #""intercom""#, with: #""intercom\n""#))
            try expectProblem(newline, .unprocessableContent, "validation-failed")

            let typo = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: #"""
                {"provider":"intercom","conversation_id":"c2","provider_message_id":"m2","sender":{"provider_user_id":"u2","email":"nope","phone":"090-1234"},
                 "text":"注文を変更したい"}
                """#)
            #expect(typo.status == .created, "\(typo.text)")
            #expect(try typo.json["flags"] as? [String] == ["contact-unreadable"])
            #expect(try await app.strings("SELECT value FROM customer_identities") == ["intercom:u2"])
            #expect(try await app.count("SELECT count(*) FROM messages WHERE jsonb_array_length(metadata->'unreadable_contacts') = 2") == 1)
        }
    }
}
