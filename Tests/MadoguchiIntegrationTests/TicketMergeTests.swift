import Foundation
import HTTPTypes
import HummingbirdTesting
import MadoguchiMail
import Testing

@Suite("Duplicate tickets merged: one customer, one conversation, one answer", .timeLimit(.minutes(10)))
struct TicketMergeTests {
    /// A mail from `from` through the endpoint: its ticket's id.
    static func mail(_ app: TestApp, _ gateway: String, from: String = "hanako@example.jp", subject: String, id: String,
                     inReplyTo: String? = nil) async throws -> String {
        let headers = inReplyTo.map { "In-Reply-To: <\($0)>\n" } ?? ""
        let response = try await app.postMail(gateway, testMail(from: from, subject: subject, id: id, headers: headers))
        #expect(response.status == .created, "\(response.text)")
        return try #require(try response.json["ticket_id"] as? String)
    }

    @Test("a second mail under a new subject merged into the first: closed and pointing on, the wait carried over, later mail in its thread joins the survivor")
    func mergeDuplicate() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let first = try await Self.mail(app, gateway, subject: "注文 1001 が届きません", id: "first@example.jp")
            let second = try await Self.mail(app, gateway, subject: "至急：まだ届いていません", id: "second@example.jp")
            #expect(first != second)
            #expect(try await app.request(.post, "/v1/tickets/\(second)/claim", key: agent).status == .ok)
            // The first was answered already; the customer waits on the second since it arrived.
            try await app.execute("UPDATE tickets SET awaiting_reply_since = NULL WHERE id = \(UUID(uuidString: first)!)")
            let waitingSince = try #require(try await app.request(.get, "/v1/tickets/\(second)", key: agent).json["awaiting_reply_since"] as? String)

            // A rule asked for approval on the duplicate (a complaint): the conversation still needs it.
            try await app.execute("UPDATE tickets SET approval_rule = 'クレーム' WHERE id = \(UUID(uuidString: second)!)")
            let merged = try await app.request(.post, "/v1/tickets/\(second)/merge", key: agent,
                                               json: #"{"into_ticket_id":"\#(first)","comment":"同じ注文の件"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            #expect(try merged.json["id"] as? String == first)
            #expect(try merged.json["awaiting_reply_since"] as? String == waitingSince)
            let duplicate = try await app.request(.get, "/v1/tickets/\(second)", key: agent).json
            #expect(duplicate["status"] as? String == "closed")
            #expect(duplicate["merged_into"] as? String == first)
            #expect(duplicate["merged_at"] as? String != nil)
            #expect(try merged.json["merged_at"] == nil)
            #expect(duplicate["claim"] == nil)
            #expect(duplicate["awaiting_reply_since"] == nil)

            // The unanswered guard lists the customer once, on the ticket that goes on.
            let waiting = try await app.request(.get, "/v1/tickets?awaiting_reply=true", key: agent).json
            #expect((waiting["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [first])
            // A note on the survivor says what came in.
            let timeline = try await app.request(.get, "/v1/tickets/\(first)/messages", key: agent).json
            let note = try #require((timeline["items"] as? [[String: Any]])?.last)
            #expect(note["direction"] as? String == "internal")
            #expect((note["body_text"] as? String)?.contains("至急：まだ届いていません") == true)
            #expect((note["body_text"] as? String)?.contains("同じ注文の件") == true)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'ticket.merged' AND ticket_id = \(UUID(uuidString: second)!)") == 1)
            // The survivor's timeline gained the note: a follower of its events hears of it.
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'note.added' AND ticket_id = \(UUID(uuidString: first)!)") == 1)
            #expect(try await app.strings("SELECT approval_rule FROM tickets WHERE id = \(UUID(uuidString: first)!)") == ["クレーム"])

            // The customer answers in the duplicate's thread: it joins the survivor, no new ticket.
            let answer = try await Self.mail(app, gateway, subject: "Re: 至急：まだ届いていません", id: "third@example.jp", inReplyTo: "second@example.jp")
            #expect(answer == first)
            // And a reply with no threading headers, only the duplicate's subject (a carrier phone's).
            #expect(try await Self.mail(app, gateway, subject: "Re: 至急：まだ届いていません", id: "fourth@example.jp") == first)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 2)
        }
    }

    @Test("the survivor's timeline holds the duplicate's mail; an agent who read it before the merge is stopped by the traffic cop, one who read it after is not")
    func mergedTimeline() async throws {
        let sink = try await SMTPSink()
        try await TestApp.run(configure: DeliveryTests.configure(sink)) { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let first = try await Self.mail(app, gateway, subject: "マグカップの件", id: "mug-1@example.jp")
            #expect(try await app.request(.post, "/v1/tickets/\(first)/claim", key: agent).status == .ok)
            func ids(_ ticket: String) async throws -> [String] {
                let response = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: agent)
                #expect(response.status == .ok, "\(response.text)")
                let page = try response.json
                return (page["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            }
            let readBefore = try #require(try await ids(first).last)
            let draft = try await app.request(.post, "/v1/tickets/\(first)/replies", key: agent, json: #"{"body":"山田様\nお調べします。"}"#)
            let reply = try #require(try draft.json["id"] as? String)

            // The customer writes again under a new subject; the new ticket is merged into the first.
            let second = try await Self.mail(app, gateway, subject: "割れていました", id: "mug-2@example.jp")
            let newest = try #require(try await ids(second).last)
            let merged = try await app.request(.post, "/v1/tickets/\(second)/merge", key: agent, json: #"{"into_ticket_id":"\#(first)"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            let timeline = try await ids(first)
            #expect(timeline.contains(newest), "the duplicate's mail is on the survivor's timeline: \(timeline)")
            #expect(timeline.firstIndex(of: newest)! < timeline.count - 1, "before the merge note, in order of arrival")

            // Read before the merge: the duplicate's mail is news, however old.
            let stale = try await app.request(.post, "/v1/replies/\(reply)/send", key: agent, json: #"{"last_seen_message_id":"\#(readBefore)"}"#)
            try expectProblem(stale, .conflict, "new-activity")
            #expect((try stale.json["new_message_ids"] as? [String])?.contains(newest) == true, "\(stale.text)")
            // Read after it (the newest on the timeline is the merge note): it goes, answering the newest mail.
            let sent = try await app.request(.post, "/v1/replies/\(reply)/send", key: agent, json: #"{"last_seen_message_id":"\#(timeline.last!)"}"#)
            #expect(sent.status == .ok, "\(sent.text)")
            #expect(try await ChildProcess.eventually(timeout: .seconds(60)) { !sink.received.isEmpty })
            let mail = ParsedMail(try #require(sink.received.first).bytes)
            #expect(mail.inReplyTo == ["mug-2@example.jp"], "the customer's newest mail, on the duplicate")
            // A message the duplicate had is a message of this timeline to have seen: only the agent's
            // own reply since is news (their merge note is not).
            let second2 = try await app.request(.post, "/v1/tickets/\(first)/replies", key: agent, json: #"{"body":"山田様\n交換します。"}"#)
            let second2ID = try #require(try second2.json["id"] as? String)
            let ownReply = try #require(try sent.json["message_id"] as? String)
            let stale2 = try await app.request(.post, "/v1/replies/\(second2ID)/send", key: agent, json: #"{"last_seen_message_id":"\#(newest)"}"#)
            try expectProblem(stale2, .conflict, "new-activity")
            #expect(try stale2.json["new_message_ids"] as? [String] == [ownReply], "\(stale2.text)")
            let sent2 = try await app.request(.post, "/v1/replies/\(second2ID)/send", key: agent, json: #"{"last_seen_message_id":"\#(ownReply)"}"#)
            #expect(sent2.status == .ok, "\(sent2.text)")
        }
    }

    @Test("a reply quoting the merged duplicate's mail quotes the customer's words: their XX is not a blank of ours")
    func quotingTheDuplicate() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let first = try await Self.mail(app, gateway, subject: "在庫の件", id: "stock-1@example.jp")
            let second = try await app.postMail(gateway, testMail(subject: "型番の件", id: "stock-2@example.jp", body: "型番XX-100は在庫がありますか"))
            let duplicate = try #require(try second.json["ticket_id"] as? String)
            #expect(try await app.request(.post, "/v1/tickets/\(first)/claim", key: agent).status == .ok)
            #expect(try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent, json: #"{"into_ticket_id":"\#(first)"}"#).status == .ok)
            let page = try await app.request(.get, "/v1/tickets/\(first)/messages", key: agent).json
            let newest = try #require((page["items"] as? [[String: Any]])?.last?["id"] as? String)
            let draft = try await app.request(.post, "/v1/tickets/\(first)/replies", key: agent,
                                              json: #"{"body":"Hanako Yamada 様\n\n> 型番XX-100は在庫がありますか\n\nございます。"}"#)
            let sent = try await app.request(.post, "/v1/replies/\(try #require(try draft.json["id"] as? String))/send", key: agent,
                                             json: #"{"last_seen_message_id":"\#(newest)"}"#)
            #expect(sent.status == .ok, "\(sent.text)")
        }
    }

    @Test("both waiting: the survivor keeps the earlier wait and due times, reopens if pending, and takes the duplicate's drafts")
    func clocksAndDrafts() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let older = try await Self.mail(app, gateway, subject: "返品したい", id: "older@example.jp")
            let newer = try await Self.mail(app, gateway, subject: "返品の件、急いでいます", id: "newer@example.jp")
            let (olderID, newerID) = (try #require(UUID(uuidString: older)), try #require(UUID(uuidString: newer)))
            // The older one's clock the earlier beyond doubt.
            try await app.execute("""
                UPDATE tickets SET awaiting_reply_since = now() - interval '2 hours',
                                   first_response_due_at = now() - interval '1 hour', first_response_warn_at = now() - interval '90 minutes'
                WHERE id = \(olderID)
                """)
            #expect(try await app.request(.post, "/v1/tickets/\(older)/claim", key: agent).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(older)/replies", key: agent, json: #"{"body":"返品を承ります。"}"#)
            let reply = try #require(try draft.json["id"] as? String)

            let merged = try await app.request(.post, "/v1/tickets/\(older)/merge", key: agent, json: #"{"into_ticket_id":"\#(newer)"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            #expect(try await app.count("""
                SELECT count(*) FROM tickets s, tickets d
                WHERE s.id = \(newerID) AND d.id = \(olderID)
                  AND s.awaiting_reply_since < now() - interval '119 minutes' AND s.first_response_due_at < now() - interval '59 minutes'
                  AND s.first_response_warn_at < now() - interval '89 minutes'
                """) == 1)
            #expect(try await app.request(.get, "/v1/replies/\(reply)", key: agent).json["ticket_id"] as? String == newer)

            // A customer waiting on a duplicate reopens a pending survivor, as their message would have.
            let asked = try await Self.mail(app, gateway, from: "jiro@example.jp", subject: "サイズ交換", id: "asked@example.jp")
            let resting = try await Self.mail(app, gateway, from: "jiro@example.jp", subject: "交換の件", id: "resting@example.jp")
            try await app.execute("UPDATE tickets SET status = 'pending', awaiting_reply_since = NULL WHERE id = \(try #require(UUID(uuidString: resting)))")
            let reopened = try await app.request(.post, "/v1/tickets/\(asked)/merge", key: agent, json: #"{"into_ticket_id":"\#(resting)"}"#)
            #expect(reopened.status == .ok, "\(reopened.text)")
            #expect(try reopened.json["status"] as? String == "open")
            #expect(try reopened.json["awaiting_reply_since"] != nil)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'ticket.reopened' AND data->>'reason' = 'merged'") == 1)
        }
    }

    @Test("an answered survivor waiting again takes the unanswered duplicate's overdue first response as its next response's due time: merging hides no breach")
    func overdueDuplicateIntoAnsweredSurvivor() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let survivor = try #require(UUID(uuidString: try await Self.mail(app, gateway, subject: "注文の確認", id: "answered@example.jp")))
            let duplicate = try #require(UUID(uuidString: try await Self.mail(app, gateway, subject: "まだ届きません", id: "late@example.jp")))
            // The survivor was answered and waits again, due in 50 minutes; the duplicate was never
            // answered, its first response an hour overdue.
            try await app.execute("""
                UPDATE tickets SET status = 'open', first_responded_at = now() - interval '3 hours', awaiting_reply_since = now() - interval '10 minutes',
                                   next_response_due_at = now() + interval '50 minutes', next_response_warn_at = now() + interval '40 minutes'
                WHERE id = \(survivor)
                """)
            try await app.execute("""
                UPDATE tickets SET awaiting_reply_since = now() - interval '2 hours',
                                   first_response_due_at = now() - interval '1 hour', first_response_warn_at = now() - interval '90 minutes'
                WHERE id = \(duplicate)
                """)
            let merged = try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent, json: #"{"into_ticket_id":"\#(survivor)"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            #expect(try await app.count("""
                SELECT count(*) FROM tickets
                WHERE id = \(survivor) AND awaiting_reply_since < now() - interval '119 minutes'
                  AND next_response_due_at < now() - interval '59 minutes' AND next_response_warn_at < now() - interval '89 minutes'
                """) == 1)
            // The answer says so too: the ticket as it now stands.
            let due = try #require(try merged.json["next_response_due_at"] as? String)
            #expect(try Date(due, strategy: .iso8601) < Date().addingTimeInterval(-3540), "\(due)")
        }
    }

    @Test("texts after an SMS ticket was merged into a mail ticket keep going there, long after the SMS ticket's own last word")
    func smsAfterMerge() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let sms = #"{"provider":"twilio","provider_message_id":"SMM1","from":"090-1234-5678","to":"+815012345678","body":"届きません"}"#
            let first = try await app.request(.post, "/v1/inbound/sms", key: gateway, json: sms)
            let duplicate = try #require(try first.json["ticket_id"] as? String)
            let customerText = try #require(try first.json["customer_id"] as? String)
            let customer = try #require(UUID(uuidString: customerText))
            let duplicateID = try #require(UUID(uuidString: duplicate))
            let survivor = try await app.ticket(customer: customer, subject: "注文 1001 について", status: "open")
            #expect(try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent,
                                          json: #"{"into_ticket_id":"\#(survivor.uuidString.lowercased())"}"#).status == .ok)
            // The SMS ticket went quiet eight days ago (the window is seven); the conversation went on
            // in the ticket it went into.
            try await app.execute("UPDATE messages SET created_at = now() - interval '8 days' WHERE ticket_id = \(duplicateID)")
            try await app.execute("""
                UPDATE tickets SET created_at = now() - interval '8 days', last_customer_message_at = now() - interval '8 days'
                WHERE id = \(duplicateID)
                """)
            try await app.execute("UPDATE tickets SET last_customer_message_at = now() - interval '1 hour' WHERE id = \(survivor)")
            let next = try await app.request(.post, "/v1/inbound/sms", key: gateway,
                                             json: #"{"provider":"twilio","provider_message_id":"SMM2","from":"090-1234-5678","to":"+815012345678","body":"まだですか"}"#)
            #expect(try next.json["ticket_id"] as? String == survivor.uuidString.lowercased(), "\(next.text)")
            #expect(try await app.count("SELECT count(*) FROM tickets") == 2)
        }
    }

    @Test("a carrier mail with only the duplicate's subject, a week after the merge, joins the survivor whose conversation went on")
    func subjectAfterMerge() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let duplicate = try await Self.mail(app, gateway, from: "taro@docomo.ne.jp", subject: "注文の件", id: "d1@docomo.ne.jp")
            let survivor = try await Self.mail(app, gateway, from: "taro@docomo.ne.jp", subject: "返品の件", id: "s1@docomo.ne.jp")
            #expect(try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent, json: #"{"into_ticket_id":"\#(survivor)"}"#).status == .ok)
            // The duplicate went quiet eight days ago (the window is seven); the survivor heard an hour ago.
            try await app.execute("""
                UPDATE tickets SET created_at = now() - interval '8 days', last_customer_message_at = now() - interval '8 days'
                WHERE id = \(UUID(uuidString: duplicate)!)
                """)
            try await app.execute("UPDATE tickets SET last_customer_message_at = now() - interval '1 hour' WHERE id = \(UUID(uuidString: survivor)!)")
            #expect(try await Self.mail(app, gateway, from: "taro@docomo.ne.jp", subject: "Re: 注文の件", id: "d2@docomo.ne.jp") == survivor)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 2)
        }
    }

    @Test("a chat conversation merged into another ticket goes on there while agents answer there, though its own ticket went quiet")
    func chatAfterMerge() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            func chat(_ conversation: String, _ id: String) async throws -> [String: Any] {
                let response = try await app.request(.post, "/v1/inbound/chat", key: gateway, json: """
                    {"provider":"intercom","conversation_id":"\(conversation)","provider_message_id":"\(id)","sender":{"provider_user_id":"u2"},"text":"質問です"}
                    """)
                #expect(response.status == .created, "\(response.text)")
                return try response.json
            }
            let duplicate = try #require(try await chat("cvX", "x1")["ticket_id"] as? String)
            let survivor = try #require(try await chat("cvY", "y1")["ticket_id"] as? String)
            #expect(duplicate != survivor)
            #expect(try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent, json: #"{"into_ticket_id":"\#(survivor)"}"#).status == .ok)
            // The customer's messages are past the idle gap; an agent answered on the survivor just now.
            try await app.execute("UPDATE messages SET created_at = now() - interval '2 hours' WHERE direction = 'inbound'")
            let answering = try #require(try await app.key(.agent).record.agentID)
            try await app.execute("""
                INSERT INTO messages (ticket_id, direction, channel, author_agent_id, body_text)
                VALUES (\(UUID(uuidString: survivor)!), 'outbound', 'chat', \(answering), 'お調べします')
                """)
            let next = try await chat("cvX", "x2")
            #expect(next["ticket_id"] as? String == survivor, "\(next)")
            #expect(try await app.count("SELECT count(*) FROM tickets") == 2)
        }
    }

    @Test("a duplicate answered after every customer message of both tickets leaves nobody waiting on the survivor")
    func answeredDuplicate() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let survivor = try await Self.mail(app, gateway, from: "jiro@example.com", subject: "注文について", id: "j1@example.com")
            let duplicate = try await Self.mail(app, gateway, from: "jiro@example.com", subject: "至急", id: "j2@example.com")
            // Answered on the duplicate, after both mails.
            try await app.execute("""
                UPDATE tickets SET awaiting_reply_since = NULL, first_responded_at = now(), last_responded_at = now()
                WHERE id = \(UUID(uuidString: duplicate)!)
                """)
            let merged = try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent, json: #"{"into_ticket_id":"\#(survivor)"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            #expect(try merged.json["awaiting_reply_since"] == nil, "\(merged.text)")
            let waiting = try await app.request(.get, "/v1/tickets?awaiting_reply=true", key: agent).json
            #expect((waiting["items"] as? [[String: Any]])?.isEmpty == true, "\(waiting)")
            // Answered before the survivor's mail, the customer still waits there.
            let third = try await Self.mail(app, gateway, from: "jiro@example.com", subject: "別件", id: "j3@example.com")
            try await app.execute("""
                UPDATE tickets SET awaiting_reply_since = NULL, first_responded_at = now() - interval '1 hour', last_responded_at = now() - interval '1 hour'
                WHERE id = \(UUID(uuidString: third)!)
                """)
            let fourth = try await Self.mail(app, gateway, from: "jiro@example.com", subject: "さらに別件", id: "j4@example.com")
            let mergedAgain = try await app.request(.post, "/v1/tickets/\(third)/merge", key: agent, json: #"{"into_ticket_id":"\#(fourth)"}"#)
            #expect(try mergedAgain.json["awaiting_reply_since"] as? String != nil, "\(mergedAgain.text)")
        }
    }

    @Test("mail in the duplicate's thread that waited on its row while the merge committed lands on the survivor, not on a new ticket")
    func mailDuringMerge() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let survivor = try await Self.mail(app, gateway, subject: "配送先の変更", id: "address@example.jp")
            let duplicate = try await Self.mail(app, gateway, subject: "住所を間違えました", id: "wrong@example.jp")
            let (survivorID, duplicateID) = (try #require(UUID(uuidString: survivor)), try #require(UUID(uuidString: duplicate)))
            // A merge holds the duplicate's row, as a merge does, while the customer's answer in its
            // thread arrives: the intake read "no merge" and waits for the row.
            let answer = try await app.database.withTransaction { merge in
                try await merge.query("SELECT id FROM tickets WHERE id = \(duplicateID) FOR UPDATE", logger: TestCluster.logger)
                let answer = Task { try await Self.mail(app, gateway, subject: "Re: 住所を間違えました", id: "right@example.jp", inReplyTo: "wrong@example.jp") }
                #expect(try await ChildProcess.eventually {
                    try await app.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") > 0
                }, "the intake waits on the duplicate's row")
                try await merge.query("""
                    UPDATE tickets SET status = 'closed', closed_at = now(), merged_into = \(survivorID), merged_at = now() WHERE id = \(duplicateID)
                    """, logger: TestCluster.logger)
                return answer
            }
            #expect(try await answer.value == survivor)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 2)
        }
    }

    @Test("resolution clocks in a merge: carried when both run, so the duplicate's close is no second outcome; not carried, a late duplicate's close stays a breach")
    func resolutionClocks() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let dashboard = try await app.keySecret(.dashboard)
            func resolutionDue(_ id: String, _ value: String) async throws {
                try await app.execute("UPDATE tickets SET resolution_due_at = \(unescaped: value) WHERE id = \(try #require(UUID(uuidString: id)))")
            }
            func merge(_ duplicate: String, into survivor: String) async throws {
                let merged = try await app.request(.post, "/v1/tickets/\(duplicate)/merge", key: agent, json: #"{"into_ticket_id":"\#(survivor)"}"#)
                #expect(merged.status == .ok, "\(merged.text)")
            }
            // Both running: the duplicate's hour-late clock goes on in the survivor, due tonight until now.
            let duplicate = try await Self.mail(app, gateway, subject: "注文 2002 のキャンセル", id: "cancel@example.jp")
            let survivor = try await Self.mail(app, gateway, subject: "キャンセルできましたか", id: "cancelled@example.jp")
            try await resolutionDue(duplicate, "now() - interval '1 hour'")
            try await resolutionDue(survivor, "now() + interval '10 hours'")
            try await merge(duplicate, into: survivor)
            // The survivor has no resolution clock to take it (another customer's pair): the duplicate's
            // late close is judged as a close, not lost.
            let late = try await Self.mail(app, gateway, from: "jiro@example.jp", subject: "返金はまだですか", id: "refund@example.jp")
            let plain = try await Self.mail(app, gateway, from: "jiro@example.jp", subject: "返金の件", id: "refund2@example.jp")
            try await resolutionDue(late, "now() - interval '2 hours'")
            try await resolutionDue(plain, "NULL")
            try await merge(late, into: plain)

            let rows = try await ReportTests.items(app, dashboard, "/v1/reports/sla?\(ReportTests.aroundToday)&granularity=month")
            let resolution = rows.filter { $0["target"] as? String == "resolution" }
            #expect(resolution.map { $0["measured"] as? Int ?? 0 }.reduce(0, +) == 2, "\(resolution)")
            #expect(resolution.map { $0["breached"] as? Int ?? 0 }.reduce(0, +) == 2, "\(resolution)")
            let breaches = try await ReportTests.items(app, dashboard, "/v1/reports/sla-breaches?\(ReportTests.aroundToday)")
            let lateOnes = Set(breaches.filter { $0["target"] as? String == "resolution" }.compactMap { $0["ticket_id"] as? String })
            #expect(lateOnes == [survivor, late], "the survivor's running breach and the uncarried close")
        }
    }

    @Test("merges refused: itself, another customer's ticket, a closed or merged ticket, a ticket another agent holds; a supervisor may; chains stay one step")
    func refusals() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            let other = try await app.keySecret(.agent)
            let supervisor = try await app.keySecret(.supervisor)
            let a = try await Self.mail(app, gateway, subject: "件名 A", id: "a@example.jp")
            let b = try await Self.mail(app, gateway, subject: "件名 B", id: "b@example.jp")
            let c = try await Self.mail(app, gateway, subject: "件名 C", id: "c@example.jp")
            let d = try await Self.mail(app, gateway, subject: "件名 D", id: "d@example.jp")
            let stranger = try await Self.mail(app, gateway, from: "taro@example.com", subject: "件名 A", id: "s@example.com")
            func merge(_ ticket: String, into: String, key: String) async throws -> TestClient.Response {
                try await app.request(.post, "/v1/tickets/\(ticket)/merge", key: key, json: #"{"into_ticket_id":"\#(into)"}"#)
            }

            try expectProblem(try await merge(a, into: a, key: agent), .unprocessableContent, "validation-failed")
            try expectProblem(try await merge(a, into: UUID().uuidString.lowercased(), key: agent), .unprocessableContent, "validation-failed")
            try expectProblem(try await merge(UUID().uuidString.lowercased(), into: a, key: agent), .notFound, "not-found")
            try expectProblem(try await merge(stranger, into: a, key: agent), .conflict, "merge-refused")

            #expect(try await app.request(.post, "/v1/tickets/\(b)/claim", key: other).status == .ok)
            try expectProblem(try await merge(b, into: a, key: agent), .conflict, "claim-held")
            #expect(try await merge(b, into: a, key: supervisor).status == .ok)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'ticket.claim_broken' AND data->>'reason' = 'merged'") == 1)
            try expectProblem(try await merge(b, into: c, key: agent), .conflict, "merge-refused")
            try expectProblem(try await merge(c, into: b, key: agent), .conflict, "merge-refused")

            // a (holding b) goes into d: b now points at d directly, and b's thread reaches d. b joined
            // d with a (its merged_at says so: the traffic cop counts b's messages as arriving then).
            try await app.execute("UPDATE tickets SET merged_at = merged_at - interval '1 hour' WHERE id = \(UUID(uuidString: b)!)")
            let bJoinedA = try #require(try await app.request(.get, "/v1/tickets/\(b)", key: agent).json["merged_at"] as? String)
            #expect(try await merge(a, into: d, key: agent).status == .ok)
            let bNow = try await app.request(.get, "/v1/tickets/\(b)", key: agent).json
            #expect(bNow["merged_into"] as? String == d)
            #expect(bNow["merged_at"] as? String == (try await app.request(.get, "/v1/tickets/\(a)", key: agent).json["merged_at"] as? String))
            #expect(bJoinedA < (bNow["merged_at"] as? String ?? ""), "an hour earlier, then moved on with a")
            #expect(try await Self.mail(app, gateway, subject: "Re: 件名 B", id: "b2@example.jp", inReplyTo: "b@example.jp") == d)

            try await app.execute("UPDATE tickets SET status = 'closed', closed_at = now() WHERE id = \(UUID(uuidString: c)!)")
            try expectProblem(try await merge(c, into: d, key: agent), .conflict, "merge-refused")
        }
    }
}
