import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import Madoguchi

@Suite("Approval flow (承認フロー)", .timeLimit(.minutes(15)))
struct ApprovalTests {
    /// An approval's body: `fields` (a JSON object) with the reply's version as a supervisor reads it now.
    static func approval(_ app: TestApp, _ reply: some CustomStringConvertible, _ fields: String) async throws -> String {
        let version = try await app.count("SELECT version FROM replies WHERE id = \(reply.description)::uuid")
        return fields.dropLast() + (fields == "{}" ? "" : ",") + #""version":\#(version)}"#
    }

    @Test("a novice cannot send; submits; a supervisor approves and exactly the approved text goes out")
    func approve() async throws {
        try await TestApp.run { app in
            let scene = try await ReplyTests.scene(app)
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(scene.agent.record.agentID)")
            try await app.execute("UPDATE tickets SET awaiting_reply_since = now() WHERE id = \(scene.ticket)")
            let boss = try await app.keySecret(.supervisor)
            let reply = try await ReplyTests.draft(scene, #"{"body":"山田 花子 様\n本日発送いたしました。"}"#)
            let lastSeen = #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#

            try expectProblem(try await ReplyTests.send(scene, reply), .conflict, "approval-required")
            let submitted = try await app.request(.post, "/v1/replies/\(reply)/submit", key: scene.agent.secret, json: lastSeen)
            #expect(try submitted.json["state"] as? String == "submitted", "\(submitted.text)")
            // An agent cannot approve, not even someone else's reply.
            try expectProblem(
                try await app.request(.post, "/v1/replies/\(reply)/approve", key: try await app.keySecret(.agent), json: try await Self.approval(app, reply, lastSeen)),
                .forbidden, "forbidden")

            // Approved with an Idempotency-Key, and retried after a lost answer: the retry gets the
            // reply it sent, not a 409 that reads as a failure; nothing goes twice.
            let approval = try await Self.approval(app, reply, lastSeen)
            let approved = try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss,
                                                 headers: [HTTPField.Name("Idempotency-Key")!: "approve-1"], json: approval)
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(try approved.json["state"] as? String == "queued")
            let retried = try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss,
                                                headers: [HTTPField.Name("Idempotency-Key")!: "approve-1"], json: approval)
            #expect(retried.status == .ok, "\(retried.text)")
            #expect(try retried.json["message_id"] as? String == approved.json["message_id"] as? String)
            try expectProblem(try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss, json: approval), .conflict, "reply-not-draft")
            #expect(try await ReplyTests.outboxCount(app) == 1)
            let sentBody = try await app.count("""
                SELECT count(*) FROM messages WHERE direction = 'outbound' AND body_text = \("山田 花子 様\n本日発送いたしました。")
                  AND author_agent_id = \(scene.agent.record.agentID)
                """)
            #expect(sentBody == 1)
            // The response is the author's in the reports, not the approver's.
            let response = try await app.count("""
                SELECT count(*) FROM ticket_responses WHERE ticket_id = \(scene.ticket) AND is_first AND agent_id = \(scene.agent.record.agentID)
                """)
            #expect(response == 1)
            // The first answer also opens the new ticket.
            #expect(try await app.eventTypes(ticket: scene.ticket).suffix(5) == [
                "reply.drafted", "reply.submitted", "reply.approved", "reply.sent", "ticket.updated",
            ])
        }
    }

    @Test("guards run at submit; an edit after submitting returns the reply to draft; an approval of a version since edited is refused; a return comes with a note")
    func editAndReturn() async throws {
        try await TestApp.run { app in
            let scene = try await ReplyTests.scene(app)
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(scene.agent.record.agentID)")
            let boss = try await app.keySecret(.supervisor)
            let lastSeen = #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#
            let unsafe = try await ReplyTests.draft(scene, #"{"body":"山田 花子 様\n●●円を返金します。"}"#)
            try expectProblem(
                try await app.request(.post, "/v1/replies/\(unsafe)/submit", key: scene.agent.secret, json: lastSeen),
                .unprocessableContent, "leftover-placeholder")

            _ = try await app.request(.patch, "/v1/replies/\(unsafe)", key: scene.agent.secret, json: #"{"body":"山田 花子 様\n1,200円を返金します。"}"#)
            #expect(try await app.request(.post, "/v1/replies/\(unsafe)/submit", key: scene.agent.secret, json: lastSeen).status == .ok)
            let edited = try await app.request(.patch, "/v1/replies/\(unsafe)", key: scene.agent.secret, json: #"{"body":"山田 花子 様\n1,500円を返金します。"}"#)
            #expect(try edited.json["state"] as? String == "draft")
            try expectProblem(
                try await app.request(.post, "/v1/replies/\(unsafe)/approve", key: boss, json: try await Self.approval(app, unsafe, lastSeen)), .conflict, "reply-not-draft")

            // The supervisor reads the reply as submitted; the author edits and submits it again before
            // the approval arrives: what the supervisor read is not what would go out.
            let read = try await Self.approval(app, unsafe, lastSeen)
            #expect(try await app.request(.post, "/v1/replies/\(unsafe)/submit", key: scene.agent.secret, json: lastSeen).status == .ok)
            try expectProblem(try await app.request(.post, "/v1/replies/\(unsafe)/approve", key: boss, json: read), .conflict, "reply-changed")
            #expect(try await ReplyTests.outboxCount(app) == 0)
            _ = try await app.request(.patch, "/v1/replies/\(unsafe)", key: scene.agent.secret, json: #"{"body":"山田 花子 様\n1,800円を返金します。"}"#)
            #expect(try await app.request(.post, "/v1/replies/\(unsafe)/submit", key: scene.agent.secret, json: lastSeen).status == .ok)
            try expectProblem(try await app.request(.post, "/v1/replies/\(unsafe)/approve", key: boss, json: read), .conflict, "reply-changed")
            #expect(try await ReplyTests.outboxCount(app) == 0)
            // A return with the version read is refused as well: the comment is about text the author has since changed.
            let readVersion = try #require((try JSONSerialization.jsonObject(with: Data(read.utf8)) as? [String: Any])?["version"] as? Int)
            try expectProblem(try await app.request(.post, "/v1/replies/\(unsafe)/return", key: boss,
                                                    json: #"{"comment":"金額が違います","version":\#(readVersion)}"#), .conflict, "reply-changed")
            let current = try #require(try await app.request(.get, "/v1/replies/\(unsafe)", key: boss).json["version"] as? Int)
            #expect(try await app.request(.get, "/v1/replies/\(unsafe)", key: boss).json["state"] as? String == "submitted")
            let returned = try await app.request(.post, "/v1/replies/\(unsafe)/return", key: boss,
                                                 json: #"{"comment":"金額を注文履歴で確認してください","version":\#(current)}"#)
            #expect(try returned.json["state"] as? String == "draft")
            let timeline = try await app.request(.get, "/v1/tickets/\(scene.ticket)/messages", key: scene.agent.secret)
            let note = try #require((try timeline.json["items"] as? [[String: Any]])?.last)
            #expect(note["direction"] as? String == "internal")
            #expect(note["body_text"] as? String == "金額を注文履歴で確認してください")
            #expect(try await ReplyTests.outboxCount(app) == 0)
        }
    }

    /// A reply drafted and submitted by an agent whose replies need approval, whose claim on the
    /// ticket has then lapsed; with the `last_seen_message_id` body it was submitted with.
    static func submittedThenLapsed(_ app: TestApp, _ draft: String) async throws -> (scene: ReplyTests.Scene, reply: String, lastSeen: String) {
        let scene = try await ReplyTests.scene(app)
        try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(scene.agent.record.agentID)")
        let lastSeen = #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#
        let reply = try await ReplyTests.draft(scene, draft)
        #expect(try await app.request(.post, "/v1/replies/\(reply)/submit", key: scene.agent.secret, json: lastSeen).status == .ok)
        try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 second' WHERE id = \(scene.ticket)")
        return (scene, reply, lastSeen)
    }

    @Test("whoever takes a ticket over finds its replies; a supervisor finds every reply awaiting approval, longest waiting first, page by page")
    func findingReplies() async throws {
        try await TestApp.run { app in
            let (scene, reply, _) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n全額返金いたします。"}"#)
            let colleague = try await app.key(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: colleague.secret).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: colleague.secret, json: #"{"body":"山田 花子 様\n確認中です。"}"#)
            let draftID = try #require(try draft.json["id"] as? String)

            func ids(_ response: TestClient.Response) throws -> [String] {
                try #require(try response.json["items"] as? [[String: Any]]).compactMap { $0["id"] as? String }
            }
            let onTicket = try await app.request(.get, "/v1/tickets/\(scene.ticket)/replies", key: colleague.secret)
            #expect(onTicket.status == .ok, "\(onTicket.text)")
            #expect(try ids(onTicket) == [reply, draftID], "oldest first, whatever the state")
            #expect(try await ids(app.request(.get, "/v1/tickets/\(scene.ticket)/replies?state=submitted", key: colleague.secret)) == [reply])

            // A second ticket's submitted reply: the queue holds both, the one waiting longest first.
            let novice = try await app.key(.agent)
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(novice.record.agentID)")
            let otherTicket = try await app.ticket(customer: scene.customer, subject: "交換の件")
            let otherMessage = try await app.inboundMessage(ticket: otherTicket, customer: scene.customer, body: "交換できますか")
            #expect(try await app.request(.post, "/v1/tickets/\(otherTicket)/claim", key: novice.secret).status == .ok)
            let otherDraft = try await app.request(.post, "/v1/tickets/\(otherTicket)/replies", key: novice.secret, json: #"{"body":"山田 花子 様\n交換いたします。"}"#)
            let otherReply = try #require(try otherDraft.json["id"] as? String)
            #expect(try await app.request(.post, "/v1/replies/\(otherReply)/submit", key: novice.secret,
                                          json: #"{"last_seen_message_id":"\#(otherMessage.uuidString)"}"#).status == .ok)
            let boss = try await app.keySecret(.supervisor)
            #expect(try await ids(app.request(.get, "/v1/replies?state=submitted", key: boss)) == [reply, otherReply])
            #expect(try await ids(app.request(.get, "/v1/replies?state=submitted&author_agent_id=\(novice.record.agentID!.lowercased)", key: boss))
                    == [otherReply])
            #expect(try await ids(app.request(.get, "/v1/replies?state=draft&state=submitted", key: boss)) == [reply, draftID, otherReply])

            // Page by page: the cursor carries on where the last page ended.
            let first = try await app.request(.get, "/v1/replies?state=submitted&limit=1", key: boss)
            #expect(try ids(first) == [reply])
            let cursor = try #require(try first.json["next_cursor"] as? String)
            #expect(first.headers[.link]?.contains("rel=\"next\"") == true)
            let second = try await app.request(.get, "/v1/replies?state=submitted&limit=1&cursor=\(cursor)", key: boss)
            #expect(try ids(second) == [otherReply])
            #expect(try second.json["next_cursor"] == nil)
            // A cursor is a position (a time and a reply id): one naming only a reply is none.
            try expectProblem(try await app.request(.get, "/v1/tickets/\(scene.ticket)/replies?cursor=\(PageCursor.encode([otherReply]))", key: boss),
                              .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/tickets/\(UUID())/replies", key: boss), .notFound, "not-found")
            try expectProblem(try await app.request(.get, "/v1/replies?state=waiting", key: boss), .badRequest, "invalid-parameter")

            // Found, the reply the novice submitted is the colleague's to submit again as it stands
            // (no edit first), and the approval sends it on their behalf.
            let lastSeen = #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#
            let resubmitted = try await app.request(.post, "/v1/replies/\(reply)/submit", key: colleague.secret, json: lastSeen)
            #expect(resubmitted.status == .ok, "\(resubmitted.text)")
            // The queue is in order of submission: submitted again, it waits behind the other now.
            #expect(try await ids(app.request(.get, "/v1/replies?state=submitted", key: boss)) == [otherReply, reply])
            #expect(try await ids(app.request(.get, "/v1/replies?state=submitted&state=submitted", key: boss)) == [otherReply, reply])
            let again = try await app.request(.post, "/v1/replies/\(reply)/submit", key: colleague.secret, json: lastSeen)
            try expectProblem(again, .conflict, "reply-not-draft")
            #expect(again.text.contains("already"), "\(again.text)")
            let approved = try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss, json: try await Self.approval(app, reply, lastSeen))
            #expect(try approved.json["state"] as? String == "queued", "\(approved.text)")
        }
    }

    @Test("the approval queue's next page carries on after the reply a page ended at, though that reply was returned meanwhile; a ticket's list after a discarded draft likewise")
    func pagesAfterWork() async throws {
        try await TestApp.run { app in
            let (scene, first, _) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n全額返金いたします。"}"#)
            // A second ticket's reply, submitted after the first.
            let novice = try await app.key(.agent)
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(novice.record.agentID)")
            let otherTicket = try await app.ticket(customer: scene.customer, subject: "交換の件")
            let otherMessage = try await app.inboundMessage(ticket: otherTicket, customer: scene.customer, body: "交換できますか")
            #expect(try await app.request(.post, "/v1/tickets/\(otherTicket)/claim", key: novice.secret).status == .ok)
            let otherDraft = try await app.request(.post, "/v1/tickets/\(otherTicket)/replies", key: novice.secret, json: #"{"body":"山田 花子 様\n交換いたします。"}"#)
            let second = try #require(try otherDraft.json["id"] as? String)
            #expect(try await app.request(.post, "/v1/replies/\(second)/submit", key: novice.secret,
                                          json: #"{"last_seen_message_id":"\#(otherMessage.uuidString)"}"#).status == .ok)
            let boss = try await app.keySecret(.supervisor)
            func ids(_ response: TestClient.Response) throws -> [String] {
                try #require(try response.json["items"] as? [[String: Any]]).compactMap { $0["id"] as? String }
            }
            let page = try await app.request(.get, "/v1/replies?state=submitted&limit=1", key: boss)
            #expect(try ids(page) == [first])
            let cursor = try #require(try page.json["next_cursor"] as? String)
            // The supervisor works on the page read: the first reply goes back to its author.
            let version = try #require(try await app.request(.get, "/v1/replies/\(first)", key: boss).json["version"] as? Int)
            #expect(try await app.request(.post, "/v1/replies/\(first)/return", key: boss,
                                          json: #"{"comment":"金額を確認してください","version":\#(version)}"#).status == .ok)
            let next = try await app.request(.get, "/v1/replies?state=submitted&limit=1&cursor=\(cursor)", key: boss)
            #expect(next.status == .ok, "\(next.text)")
            #expect(try ids(next) == [second], "\(next.text)")

            // A ticket's drafts, paged; the draft a page ended at discarded before the next page is read.
            var drafts: [String] = []
            for number in 1...3 {
                let draft = try await app.request(.post, "/v1/tickets/\(otherTicket)/replies", key: novice.secret, json: #"{"body":"山田 花子 様\n下書き\#(number)"}"#)
                drafts.append(try #require(try draft.json["id"] as? String))
            }
            let ticketPage = try await app.request(.get, "/v1/tickets/\(otherTicket)/replies?state=draft&limit=1", key: novice.secret)
            #expect(try ids(ticketPage) == [drafts[0]])
            let ticketCursor = try #require(try ticketPage.json["next_cursor"] as? String)
            #expect(try await app.request(.delete, "/v1/replies/\(drafts[0])", key: novice.secret).status == .noContent)
            let rest = try await app.request(.get, "/v1/tickets/\(otherTicket)/replies?state=draft&cursor=\(ticketCursor)", key: novice.secret)
            #expect(rest.status == .ok, "\(rest.text)")
            #expect(try ids(rest) == Array(drafts[1...]), "\(rest.text)")
        }
    }

    @Test("a submitted reply moved by a merge keeps its version and its place in the approval queue, and is approved as read")
    func mergedSubmittedReply() async throws {
        try await TestApp.run { app in
            let (scene, reply, lastSeen) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n全額返金いたします。"}"#)
            let boss = try await app.keySecret(.supervisor)
            let read = try await Self.approval(app, reply, lastSeen)
            let before = try await app.request(.get, "/v1/replies/\(reply)", key: boss)
            // The same customer writes again in a new ticket; the novice's ticket is merged into it,
            // and the novice claims the survivor to see the approval through.
            let survivor = try await app.ticket(customer: scene.customer, subject: "返金の件（再送）")
            _ = try await app.inboundMessage(ticket: survivor, customer: scene.customer, body: "返金はまだですか")
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/merge", key: boss,
                                          json: #"{"into_ticket_id":"\#(survivor.uuidString)"}"#).status == .ok)
            let after = try await app.request(.get, "/v1/replies/\(reply)", key: boss)
            #expect(try after.json["ticket_id"] as? String == survivor.uuidString.lowercased(), "\(after.text)")
            #expect(try after.json["version"] as? Int == (try before.json["version"] as? Int))
            #expect(try after.json["updated_at"] as? String == (try before.json["updated_at"] as? String))
            #expect(try await app.request(.post, "/v1/tickets/\(survivor)/claim", key: scene.agent.secret).status == .ok)
            let newest = try await app.insertReturningID(
                "SELECT id FROM messages WHERE ticket_id = ANY(ARRAY(SELECT ticket_id FROM ticket_timeline(\(survivor)))) ORDER BY created_at DESC, id DESC LIMIT 1")
            let approval = try #require(try JSONSerialization.jsonObject(with: Data(read.utf8)) as? [String: Any])
            var body = approval
            body["last_seen_message_id"] = newest.uuidString.lowercased()
            let approved = try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss,
                                                 json: String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self))
            #expect(approved.status == .ok, "\(approved.text)")
        }
    }

    @Test("another agent who takes the ticket over cannot send a flagged agent's reply without approval")
    func takeoverNeedsApproval() async throws {
        try await TestApp.run { app in
            let (scene, reply, lastSeen) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n全額返金いたします。"}"#)
            // The novice's claim has lapsed; a colleague without the flag takes the ticket and the draft.
            let colleague = try await app.key(.agent)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: colleague.secret).status == .ok)
            let edited = try await app.request(.patch, "/v1/replies/\(reply)", key: colleague.secret, json: "{}")
            #expect(try edited.json["state"] as? String == "draft", "\(edited.text)")
            try expectProblem(try await app.request(.post, "/v1/replies/\(reply)/send", key: colleague.secret, json: lastSeen),
                              .conflict, "approval-required")
            #expect(try await ReplyTests.outboxCount(app) == 0)
            // Their own reply goes as usual.
            let own = try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: colleague.secret, json: #"{"body":"山田 花子 様\n確認いたします。"}"#)
            let ownID = try #require(try own.json["id"] as? String)
            #expect(try await app.request(.post, "/v1/replies/\(ownID)/send", key: colleague.secret, json: lastSeen).status == .ok)
        }
    }

    @Test("a colleague who took the ticket over submits the flagged author's draft and the approval sends it; before that, approval names who holds the ticket")
    func takeoverSubmitted() async throws {
        try await TestApp.run { app in
            let (scene, reply, lastSeen) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n全額返金いたします。"}"#)
            let colleague = try await app.key(.agent)
            let supervisor = try await app.keySecret(.supervisor)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: colleague.secret).status == .ok)
            // Submitted by its author, who no longer holds the ticket: the colleague does, and is named.
            let early = try await app.request(.post, "/v1/replies/\(reply)/approve", key: supervisor, json: try await Self.approval(app, reply, lastSeen))
            try expectProblem(early, .conflict, "claim-held")
            #expect(try (early.json["detail"] as? String)?.contains(colleague.record.agentID?.uuidString.lowercased() ?? "-") == true, "\(early.text)")
            #expect(try await ReplyTests.outboxCount(app) == 0)

            // The colleague takes the draft back and submits it; the supervisor's approval sends it.
            #expect(try await app.request(.patch, "/v1/replies/\(reply)", key: colleague.secret, json: "{}").status == .ok)
            let submitted = try await app.request(.post, "/v1/replies/\(reply)/submit", key: colleague.secret, json: lastSeen)
            #expect(try submitted.json["state"] as? String == "submitted", "\(submitted.text)")
            let approved = try await app.request(.post, "/v1/replies/\(reply)/approve", key: supervisor, json: try await Self.approval(app, reply, lastSeen))
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(try approved.json["state"] as? String == "queued")
            #expect(try await ReplyTests.outboxCount(app) == 1)
        }
    }

    @Test("a supervisor who takes the ticket over and submits a flagged agent's draft cannot approve it too; another supervisor can")
    func submitterDoesNotApprove() async throws {
        try await TestApp.run { app in
            let (scene, reply, lastSeen) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n確認いたします。"}"#)
            let boss = try await app.key(.supervisor)
            #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: boss.secret).status == .ok)
            let edited = try await app.request(.patch, "/v1/replies/\(reply)", key: boss.secret, json: #"{"body":"山田 花子 様\n全額返金いたします。"}"#)
            #expect(edited.status == .ok, "\(edited.text)")
            #expect(try await app.request(.post, "/v1/replies/\(reply)/submit", key: boss.secret, json: lastSeen).status == .ok)
            try expectProblem(try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss.secret, json: try await Self.approval(app, reply, lastSeen)), .forbidden, "forbidden")
            #expect(try await ReplyTests.outboxCount(app) == 0)
            let approved = try await app.request(.post, "/v1/replies/\(reply)/approve", key: try await app.keySecret(.supervisor), json: try await Self.approval(app, reply, lastSeen))
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(try await ReplyTests.outboxCount(app) == 1)
        }
    }

    @Test("a flagged agent's edit of a colleague's draft needs approval when the colleague sends it; a supervisor who edited it does not approve it")
    func flaggedEditor() async throws {
        try await TestApp.run { app in
            let scene = try await ReplyTests.scene(app)
            let lastSeen = #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#
            let reply = try await ReplyTests.draft(scene, #"{"body":"山田 花子 様\n確認いたします。"}"#)
            func handOver(to key: String) async throws {
                try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 second' WHERE id = \(scene.ticket)")
                #expect(try await app.request(.post, "/v1/tickets/\(scene.ticket)/claim", key: key).status == .ok)
            }
            // A novice takes the ticket over, rewrites the colleague's draft and hands the ticket back.
            let novice = try await app.key(.agent)
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(novice.record.agentID)")
            try await handOver(to: novice.secret)
            #expect(try await app.request(.patch, "/v1/replies/\(reply)", key: novice.secret, json: #"{"body":"山田 花子 様\n全額返金いたします。"}"#).status == .ok)
            try await handOver(to: scene.agent.secret)
            let refused = try await ReplyTests.send(scene, reply)
            try expectProblem(refused, .conflict, "approval-required")
            #expect(try (refused.json["detail"] as? String)?.contains("edited this reply") == true, "\(refused.text)")
            #expect(try await ReplyTests.outboxCount(app) == 0)

            // A supervisor edits it in turn; the author submits it: that supervisor is no second pair of eyes.
            let boss = try await app.key(.supervisor)
            try await handOver(to: boss.secret)
            #expect(try await app.request(.patch, "/v1/replies/\(reply)", key: boss.secret, json: #"{"body":"山田 花子 様\n半額を返金いたします。"}"#).status == .ok)
            try await handOver(to: scene.agent.secret)
            #expect(try await app.request(.post, "/v1/replies/\(reply)/submit", key: scene.agent.secret, json: lastSeen).status == .ok)
            try expectProblem(try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss.secret, json: try await Self.approval(app, reply, lastSeen)),
                              .forbidden, "forbidden")
            let approved = try await app.request(.post, "/v1/replies/\(reply)/approve", key: try await app.keySecret(.supervisor),
                                                 json: try await Self.approval(app, reply, lastSeen))
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(try await ReplyTests.outboxCount(app) == 1)
        }
    }

    @Test("a closed ticket takes no reply: a submitted reply is not approved, a draft not sent, no new one drafted")
    func closedTicket() async throws {
        try await TestApp.run { app in
            let scene = try await ReplyTests.scene(app)
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(scene.agent.record.agentID)")
            let lastSeen = #"{"last_seen_message_id":"\#(scene.lastMessage.uuidString)"}"#
            let submitted = try await ReplyTests.draft(scene, #"{"body":"山田 花子 様\n確認いたします。"}"#)
            #expect(try await app.request(.post, "/v1/replies/\(submitted)/submit", key: scene.agent.secret, json: lastSeen).status == .ok)
            let draft = try await ReplyTests.draft(scene, #"{"body":"山田 花子 様\n承知しました。"}"#)
            // A supervisor closes the ticket (spam, a duplicate) while both wait; the claim stays.
            let boss = try await app.keySecret(.supervisor)
            let closed = try await app.request(.patch, "/v1/tickets/\(scene.ticket)", key: boss, headers: [.ifMatch: "*"], json: #"{"status":"closed"}"#)
            #expect(closed.status == .ok, "\(closed.text)")
            try expectProblem(try await app.request(.post, "/v1/replies/\(submitted)/approve", key: boss, json: try await Self.approval(app, submitted, lastSeen)),
                              .conflict, "ticket-closed")
            try await app.execute("UPDATE agents SET requires_approval = false WHERE id = \(scene.agent.record.agentID)")
            try expectProblem(try await ReplyTests.send(scene, draft), .conflict, "ticket-closed")
            try expectProblem(try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret, json: #"{"body":"x"}"#),
                              .conflict, "ticket-closed")
            #expect(try await ReplyTests.outboxCount(app) == 0)
        }
    }

    @Test("a supervisor cannot approve their own reply, and an approval needs the author's claim to be live")
    func approvalBoundaries() async throws {
        try await TestApp.run { app in
            let (scene, reply, lastSeen) = try await Self.submittedThenLapsed(app, #"{"body":"山田 花子 様\n承知しました。"}"#)
            try expectProblem(
                try await app.request(.post, "/v1/replies/\(reply)/approve", key: try await app.keySecret(.supervisor), json: try await Self.approval(app, reply, lastSeen)),
                .conflict, "claim-required")

            // A supervisor's own draft: approved by someone else, never by themselves.
            let boss = try await app.key(.supervisor)
            let ticket = try await app.ticket(customer: scene.customer)
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: boss.secret).status == .ok)
            let own = try await app.request(.post, "/v1/tickets/\(ticket)/replies", key: boss.secret, json: #"{"body":"山田 花子 様\nx"}"#)
            let ownID = try #require(try own.json["id"] as? String)
            #expect(try await app.request(.post, "/v1/replies/\(ownID)/submit", key: boss.secret, json: "{}").status == .ok)
            try expectProblem(
                try await app.request(.post, "/v1/replies/\(ownID)/approve", key: boss.secret, json: try await Self.approval(app, ownID, "{}")), .forbidden, "forbidden")
        }
    }
}
