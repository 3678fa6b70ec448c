import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("The team: agents, queues, routing and auto-assignment", .timeLimit(.minutes(15)))
struct TeamTests {
    static func json(_ response: TestClient.Response, _ status: HTTPResponse.Status = .ok) throws -> [String: Any] {
        #expect(response.status == status, "\(response.text)")
        return try response.json
    }

    /// A queue made through the API.
    static func queue(_ app: TestApp, _ key: String, _ json: String) async throws {
        _ = try Self.json(try await app.request(.post, "/v1/queues", key: key, json: json), .created)
    }

    /// An agent made through the API, with an agent key of their own.
    static func agent(_ app: TestApp, _ admin: String, _ json: String) async throws -> (id: String, key: String) {
        let agent = try Self.json(try await app.request(.post, "/v1/agents", key: admin, json: json), .created)
        let id = try #require(agent["id"] as? String)
        let key = try Self.json(
            try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"key of \#(id)","role":"agent","agent_id":"\#(id)"}"#),
            .created)
        return (id, try #require(key["key"] as? String))
    }

    /// `count` tickets in `queue`, inserted by `writers` connections at once, each its own commit.
    static func arrive(_ app: TestApp, count: Int, queue: String, writers: Int = 10) async throws {
        let customer = try await app.customer()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for n in stride(from: writer, to: count, by: writers) {
                        try await app.execute("""
                            INSERT INTO tickets (customer_id, subject, channel, queue) VALUES (\(customer), \("#\(n)"), 'email', \(queue))
                            """)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func assigned(_ app: TestApp, queue: String) async throws -> [String: Int] {
        try await app.database.withConnection { connection in
            let rows = try await connection.query(
                "SELECT assignee_id, count(*) FROM tickets WHERE queue = \(queue) AND assignee_id IS NOT NULL GROUP BY 1",
                logger: TestCluster.logger)
            var counts: [String: Int] = [:]
            for try await (agent, count) in rows.decode((UUID, Int64).self) { counts[agent.lowercased] = Int(count) }
            return counts
        }
    }

    @Test("an admin adds an agent and their key over the API; approval switched on for the new hire holds their reply; agents set only their own availability")
    func agentsThroughTheAPI() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let boss = try await app.keySecret(.supervisor)
            let hire = try await Self.agent(app, admin, #"""
                {"display_name":"佐藤 新人","email":"sato@shop.example","queues":["general"],"skills":["english"],"capacity":20,
                 "requires_approval":true}
                """#)
            let shown = try Self.json(try await app.request(.get, "/v1/agents/\(hire.id)", key: hire.key))
            #expect(shown["requires_approval"] as? Bool == true)
            #expect(shown["capacity"] as? Int == 20)
            #expect(shown["availability"] as? String == "available")
            #expect(shown["roles"] as? [String] == ["agent"])
            let members = try Self.json(try await app.request(.get, "/v1/agents?queue=general", key: boss))
            #expect((members["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [hire.id])

            // The approval flow (承認フロー), end to end, for an agent made through the API.
            let customer = try await app.customer(name: "山田 花子", email: "hanako@example.jp")
            let ticket = try await app.ticket(customer: customer)
            let message = try await app.inboundMessage(ticket: ticket, customer: customer, body: "商品がまだ届きません。")
            _ = try Self.json(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: hire.key))
            let draft = try Self.json(
                try await app.request(.post, "/v1/tickets/\(ticket)/replies", key: hire.key, json: #"{"body":"山田 花子 様\n本日発送いたしました。"}"#),
                .created)
            let reply = try #require(draft["id"] as? String)
            let lastSeen = #"{"last_seen_message_id":"\#(message.uuidString)"}"#
            try expectProblem(try await app.request(.post, "/v1/replies/\(reply)/send", key: hire.key, json: lastSeen), .conflict, "approval-required")
            #expect(try Self.json(try await app.request(.post, "/v1/replies/\(reply)/submit", key: hire.key, json: lastSeen))["state"] as? String == "submitted")
            #expect(try Self.json(try await app.request(.post, "/v1/replies/\(reply)/approve", key: boss, json: try await ApprovalTests.approval(app, reply, lastSeen)))["state"] as? String == "queued")

            // Availability: their own, yes; anything else, or anyone else's, no.
            let away = try Self.json(try await app.request(.patch, "/v1/agents/\(hire.id)", key: hire.key, json: #"{"availability":"away"}"#))
            #expect(away["availability"] as? String == "away")
            try expectProblem(
                try await app.request(.patch, "/v1/agents/\(hire.id)", key: hire.key, json: #"{"requires_approval":false}"#), .forbidden, "forbidden")
            let other = try await app.key(.agent)
            try expectProblem(
                try await app.request(.patch, "/v1/agents/\(other.record.agentID!.lowercased)", key: hire.key, json: #"{"availability":"away"}"#),
                .forbidden, "forbidden")
            let lifted = try Self.json(try await app.request(.patch, "/v1/agents/\(hire.id)", key: boss, json: #"{"requires_approval":false}"#))
            #expect(lifted["requires_approval"] as? Bool == false)
            // Capacity 0 removes the limit; leaving it out keeps it.
            let unlimited = try Self.json(try await app.request(.patch, "/v1/agents/\(hire.id)", key: boss, json: #"{"capacity":0}"#))
            #expect(unlimited["capacity"] == nil, "\(unlimited)")
            let limited = try Self.json(try await app.request(.patch, "/v1/agents/\(hire.id)", key: boss, json: #"{"capacity":5}"#))
            let kept = try Self.json(try await app.request(.patch, "/v1/agents/\(hire.id)", key: boss, json: #"{"skills":["english","returns"]}"#))
            #expect(limited["capacity"] as? Int == 5 && kept["capacity"] as? Int == 5)
            // An empty change is no change: the version stays (another writer's If-Match still holds).
            let untouched = try Self.json(try await app.request(.patch, "/v1/agents/\(hire.id)", key: boss, json: "{}"))
            #expect(untouched["version"] as? Int == kept["version"] as? Int, "\(untouched)")
            let queue = try Self.json(try await app.request(.get, "/v1/queues/general", key: boss))
            let sameQueue = try Self.json(try await app.request(.patch, "/v1/queues/general", key: boss, json: "{}"))
            #expect(sameQueue["version"] as? Int == queue["version"] as? Int, "\(sameQueue)")
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'queue.updated'") == 0, "nothing changed, nothing announced")
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'agent.availability_changed'") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'agent.updated' AND data->'fields' = '[\"requires_approval\"]'") == 1)
        }
    }

    @Test("bad input: capacity 0 or negative, an unknown queue, a customer's address, a rule with no condition or no action — each a clear 4xx, nothing written")
    func badInput() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let boss = try await app.keySecret(.supervisor)
            _ = try await app.customer(name: "客", email: "kyaku@example.jp")
            func refused(_ json: String, _ pointer: String) async throws {
                let response = try await app.request(.post, "/v1/agents", key: admin, json: json)
                try expectProblem(response, .unprocessableContent, "validation-failed")
                #expect((try response.json["errors"] as? [[String: String]])?.map { $0["pointer"] } == [pointer], "\(response.text)")
            }
            try await refused(#"{"display_name":"A","capacity":0}"#, "/capacity")
            try await refused(#"{"display_name":"A","capacity":-3}"#, "/capacity")
            try await refused(#"{"display_name":"A","queues":["general","nowhere"]}"#, "/queues/1")
            try await refused(#"{"display_name":"A","email":"kyaku@example.jp"}"#, "/email")
            try await refused(#"{"display_name":"A","skills":["Not A Skill"]}"#, "/skills/0")
            try await refused(#"{"display_name":"  "}"#, "/display_name")
            #expect(try await app.count("SELECT count(*) FROM agents WHERE display_name = 'A'") == 0)

            _ = try Self.json(try await app.request(.post, "/v1/agents", key: admin, json: #"{"display_name":"B","email":"b@shop.example"}"#), .created)
            try expectProblem(
                try await app.request(.post, "/v1/agents", key: admin, json: #"{"display_name":"C","email":"B@shop.example"}"#), .conflict, "email-taken")
            try expectProblem(try await app.request(.get, "/v1/agents/\(UUID().uuidString)", key: admin), .notFound, "not-found")

            try expectProblem(try await app.request(.post, "/v1/queues", key: boss, json: #"{"name":"Returns Desk"}"#), .unprocessableContent, "validation-failed")
            try await Self.queue(app, boss, #"{"name":"returns"}"#)
            try expectProblem(try await app.request(.post, "/v1/queues", key: boss, json: #"{"name":"returns"}"#), .conflict, "name-taken")
            try expectProblem(
                try await app.request(.post, "/v1/queues", key: boss, json: #"{"name":"x","sla_policy_id":"\#(UUID().uuidString)"}"#),
                .unprocessableContent, "validation-failed")
            try expectProblem(try await app.request(.delete, "/v1/queues/general", key: boss), .conflict, "queue-in-use")
            try expectProblem(try await app.request(.delete, "/v1/queues/nowhere", key: boss), .notFound, "not-found")

            for rule in [#"{"name":"r","queue":"returns"}"#, #"{"name":"r","keywords":["返品"]}"#] {
                try expectProblem(try await app.request(.post, "/v1/rules", key: boss, json: rule), .unprocessableContent, "validation-failed")
            }
            let unknownQueue = try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"r","keywords":["返品"],"queue":"nowhere"}"#)
            try expectProblem(unknownQueue, .unprocessableContent, "validation-failed")
            #expect((try unknownQueue.json["errors"] as? [[String: String]])?.first?["pointer"] == "/queue")
            #expect(try await app.count("SELECT count(*) FROM rules") == 0)

            // A queue a rule routes to cannot go; once the rule points elsewhere it can.
            let rule = try Self.json(
                try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"r","keywords":["返品"],"queue":"returns"}"#), .created)
            try expectProblem(try await app.request(.delete, "/v1/queues/returns", key: boss), .conflict, "queue-in-use")
            _ = try Self.json(try await app.request(
                .put, "/v1/rules/\(try #require(rule["id"] as? String))", key: boss, json: #"{"name":"r","keywords":["返品"],"tags":["返品"]}"#))
            #expect(try await app.request(.delete, "/v1/queues/returns", key: boss).status == .noContent)
        }
    }

    @Test("routing: mail to returns@ and a form saying ｈｅｎｐｉｎ land in the returns queue with the rule named; rule order decides conflicts; the queue's SLA policy applies, and leaves with the queue")
    func routing() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let gateway = try await app.keySecret(.gateway)
            let policy = try Self.json(try await app.request(.post, "/v1/sla-policies", key: boss, json: #"""
                {"name":"返品 SLA","calendar_id":"00000000-0000-4000-8000-0000000ca1e0","targets":[{"priority":"normal","first_response_minutes":120}]}
                """#), .created)
            let policyID = try #require(policy["id"] as? String)
            try await Self.queue(app, boss, #"{"name":"returns","description":"返品・交換","sla_policy_id":"\#(policyID)"}"#)
            try await Self.queue(app, boss, #"{"name":"wholesale"}"#)
            for rule in [
                #"{"name":"返品 mailbox","recipients":["returns@"],"queue":"returns"}"#,
                #"{"name":"返品 words","keywords":["返品","henpin"],"queue":"returns","category":"返品・交換","tags":["返品"]}"#,
                #"{"name":"卸","keywords":["卸"],"queue":"wholesale","category":"卸"}"#,
            ] {
                _ = try Self.json(try await app.request(.post, "/v1/rules", key: boss, json: rule), .created)
            }
            let agent = try await app.keySecret(.agent)
            func ticket(_ outcome: TestClient.Response) async throws -> [String: Any] {
                let id = try #require(try outcome.json["ticket_id"] as? String, "\(outcome.text)")
                return try Self.json(try await app.request(.get, "/v1/tickets/\(id)", key: agent))
            }

            let mailed = try await ticket(try await app.postMail(gateway, """
                From: Hanako <hanako@example.jp>
                To: Returns@Shop.Example
                Subject: 注文について
                Message-ID: <r1@example.jp>

                サイズが合いませんでした。

                """))
            #expect(mailed["queue"] as? String == "returns")
            #expect(mailed["routing_reason"] as? String == "rule 返品 mailbox: recipient returns@shop.example")
            #expect(mailed["sla_policy_id"] as? String == policyID)

            let form = try await ticket(try await app.request(.post, "/v1/inbound/webform", key: gateway, json: #"""
                {"form_id":"contact","submission_id":"s-1","name":"山田 花子","email":"hanako@example.jp","subject":"ご相談","body":"ｈｅｎｐｉｎを希望します"}
                """#))
            #expect(form["queue"] as? String == "returns")
            #expect(form["category"] as? String == "返品・交換")
            #expect(form["tags"] as? [String] == ["返品"])
            #expect(form["routing_reason"] as? String == "rule 返品 words: keyword henpin")

            // Both rules match; the earlier one decides the queue and category.
            let both = try await ticket(try await app.request(.post, "/v1/inbound/webform", key: gateway, json: #"""
                {"form_id":"contact","submission_id":"s-2","name":"山田 花子","email":"hanako@example.jp","subject":"卸と返品","body":"卸で買った分を返品したい"}
                """#))
            #expect(both["queue"] as? String == "returns")
            #expect(both["category"] as? String == "返品・交換")
            let routed = try await app.count("SELECT count(*) FROM events WHERE type = 'ticket.routed' AND data->'rules' = '[\"返品 words\", \"卸\"]'")
            #expect(routed == 1)

            // Moved by hand, a ticket takes its new queue's policy (the default one where the queue has none,
            // none where there is no default either: the old queue's is not kept), and its clocks follow.
            let noDefault = try Self.json(try await app.request(.patch, "/v1/tickets/\(try #require(mailed["id"] as? String))", key: boss,
                                                                 headers: [.ifMatch: "*"], json: #"{"queue":"wholesale"}"#))
            #expect(noDefault["sla_policy_id"] == nil, "\(noDefault)")
            #expect(noDefault["first_response_due_at"] == nil, "\(noDefault)")
            let standard = try await SLATests.defaultPolicy(app, boss)
            let moved = try Self.json(try await app.request(.patch, "/v1/tickets/\(try #require(form["id"] as? String))", key: boss,
                                                            headers: [.ifMatch: "*"], json: #"{"queue":"wholesale"}"#))
            #expect(moved["sla_policy_id"] as? String == standard)
            let back = try Self.json(try await app.request(.patch, "/v1/tickets/\(try #require(form["id"] as? String))", key: boss,
                                                           headers: [.ifMatch: "*"], json: #"{"queue":"returns"}"#))
            #expect(back["sla_policy_id"] as? String == policyID)
            // From the same opening on the same calendar: 60 business minutes end before 120 do.
            let standardDue = try #require(SLATests.date(moved["first_response_due_at"]))
            let returnsDue = try #require(SLATests.date(back["first_response_due_at"]))
            #expect(returnsDue > standardDue, "\(moved) \(back)")
        }
    }

    @Test("1,000 tickets arriving at once into a round-robin queue with 5 available agents of capacity 300: 200 ± 1 each, none to the agent off duty, none twice")
    func roundRobin() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            try await Self.queue(app, admin, #"{"name":"support","auto_assign":"round_robin"}"#)
            var onDuty: [String] = []
            for n in 1...5 { onDuty.append(try await Self.agent(app, admin, #"{"display_name":"担当 \#(n)","queues":["support"],"capacity":300}"#).id) }
            let offDuty = try await Self.agent(app, admin, #"{"display_name":"休み","queues":["support"],"capacity":300,"availability":"offline"}"#).id

            try await Self.arrive(app, count: 1000, queue: "support")
            let all = try await ChildProcess.eventually(timeout: .seconds(90)) {
                try await app.count("SELECT count(*) FROM tickets WHERE queue = 'support' AND assignee_id IS NOT NULL") == 1000
            }
            #expect(all, "every ticket assigned")
            let counts = try await Self.assigned(app, queue: "support")
            for agent in onDuty { #expect((199...201).contains(counts[agent] ?? 0), "\(counts)") }
            #expect(counts[offDuty] == nil)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'ticket.assigned'") == 1000)
            #expect(try await app.count("SELECT count(DISTINCT ticket_id) FROM events WHERE type = 'ticket.assigned'") == 1000)
        }
    }

    @Test("balanced: nobody over capacity; an agent going available gets waiting tickets, a solved ticket frees room; a pull prefers the caller's own")
    func balanced() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            // The oldest ticket waits in the general queue, which nobody is assigned in.
            let customer = try await app.customer()
            let oldest = try await app.ticket(customer: customer)
            try await Self.queue(app, admin, #"{"name":"desk","auto_assign":"balanced"}"#)
            let a = try await Self.agent(app, admin, #"{"display_name":"A","queues":["desk","general"],"capacity":3}"#)
            let b = try await Self.agent(app, admin, #"{"display_name":"B","queues":["desk"],"capacity":3}"#)
            let c = try await Self.agent(app, admin, #"{"display_name":"C","queues":["desk"],"capacity":3,"availability":"offline"}"#)
            // A already carries one ticket from elsewhere, which counts against capacity.
            _ = try await app.ticket(customer: customer, assignee: UUID(uuidString: a.id))

            try await Self.arrive(app, count: 10, queue: "desk", writers: 2)
            #expect(try await ChildProcess.eventually { try await Self.assigned(app, queue: "desk") == [a.id: 2, b.id: 3] })
            let queue = try Self.json(try await app.request(.get, "/v1/queues/desk", key: admin))
            #expect(queue["waiting"] as? Int == 5)
            #expect(Set(queue["members"] as? [String] ?? []) == [a.id, b.id, c.id])

            _ = try Self.json(try await app.request(.patch, "/v1/agents/\(c.id)", key: c.key, json: #"{"availability":"available"}"#))
            #expect(try await ChildProcess.eventually { try await Self.assigned(app, queue: "desk") == [a.id: 2, b.id: 3, c.id: 3] })

            try await app.execute("UPDATE tickets SET status = 'solved' WHERE id = (SELECT id FROM tickets WHERE assignee_id = \(UUID(uuidString: b.id)) LIMIT 1)")
            #expect(try await ChildProcess.eventually { try await app.count("SELECT count(*) FROM tickets WHERE queue = 'desk' AND assignee_id IS NULL") == 1 })
            let workload = try Self.json(try await app.request(.get, "/v1/agents/\(b.id)/workload", key: admin))
            #expect(workload["open"] as? Int == 3)
            #expect(workload["capacity"] as? Int == 3)

            // A pull takes the caller's own assigned ticket before an older one nobody has.
            let pulled = try Self.json(try await app.request(.post, "/v1/queue/next", key: a.key))
            #expect(pulled["assignee_id"] as? String == a.id)
            #expect(pulled["id"] as? String != oldest.lowercased)
        }
    }

    @Test("auto-assignment waiting on an agent's row rechecks their skills once it has it: a skill taken away meanwhile is not assigned")
    func assignmentRechecksTheAgent() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            try await Self.queue(app, admin, #"{"name":"desk","auto_assign":"off"}"#)
            let english = try await Self.agent(app, admin, #"{"display_name":"English","queues":["desk"],"skills":["english"]}"#)
            let agentID = try #require(UUID(uuidString: english.id))
            let ticket = try await app.ticket(customer: try await app.customer())
            try await app.execute("UPDATE tickets SET queue = 'desk', required_skill = 'english' WHERE id = \(ticket)")
            // A supervisor's change to the agent, not yet committed, holds their row while the desk
            // starts assigning: the worker picks the agent by the skills it can see, then waits.
            let assigned = try await app.database.withTransaction { change in
                try await change.query("UPDATE agents SET skills = '{}' WHERE id = \(agentID)", logger: TestCluster.logger)
                try await app.execute("UPDATE queues SET auto_assign = 'balanced' WHERE name = 'desk'")
                let round = Task { try await app.count("SELECT count(*) FROM assign_waiting_tickets(10)") }
                #expect(try await ChildProcess.eventually {
                    try await app.count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%assign_waiting_tickets%'") > 0
                }, "a round waits on the agent's row")
                return round
            }
            #expect(try await assigned.value == 0, "the skill went while the round waited")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(ticket) AND assignee_id IS NULL") == 1)
        }
    }

    @Test("a pull gives a ticket that needs a skill only to an agent with it; one assigned to the caller is theirs anyway")
    func pullsBySkill() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let english = try await Self.agent(app, admin, #"{"display_name":"English","skills":["english"]}"#)
            let other = try await Self.agent(app, admin, #"{"display_name":"日本語のみ"}"#)
            let customer = try await app.customer()
            // The most urgent ticket needs English; an older plain one waits behind it.
            let needsEnglish = try await app.ticket(customer: customer)
            try await app.execute("UPDATE tickets SET required_skill = 'english', priority = 'urgent' WHERE id = \(needsEnglish)")
            let plain = try await app.ticket(customer: customer)
            let pulled = try Self.json(try await app.request(.post, "/v1/queue/next", key: other.key))
            #expect(pulled["id"] as? String == plain.lowercased, "not the ticket that needs English")
            #expect(try await app.request(.post, "/v1/queue/next", key: other.key).status == .noContent)
            // Its claim lapses: still not for the agent without the skill.
            try await app.execute("UPDATE tickets SET claim_agent_id = \(UUID(uuidString: english.id)), claim_expires_at = now() - interval '1 minute' WHERE id = \(needsEnglish)")
            #expect(try await app.request(.post, "/v1/queue/next", key: other.key).status == .noContent)
            let taken = try Self.json(try await app.request(.post, "/v1/queue/next", key: english.key))
            #expect(taken["id"] as? String == needsEnglish.lowercased)
            // Assigned to the agent without the skill (a supervisor's choice): theirs to pull.
            let assigned = try await app.ticket(customer: customer, assignee: UUID(uuidString: other.id))
            try await app.execute("UPDATE tickets SET required_skill = 'english' WHERE id = \(assigned)")
            let own = try Self.json(try await app.request(.post, "/v1/queue/next", key: other.key))
            #expect(own["id"] as? String == assigned.lowercased)
        }
    }

    @Test("deactivation: keys refused at once, claims released, open tickets back in their queue, events written; twice changes nothing")
    func deactivation() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let leaver = try await Self.agent(app, admin, #"{"display_name":"退職者","email":"leaver@shop.example"}"#)
            let other = try await Self.agent(app, admin, #"{"display_name":"在籍者","email":"stays@shop.example"}"#)
            let agentID = try #require(UUID(uuidString: leaver.id))
            let customer = try await app.customer()
            let claimed = try await app.ticket(customer: customer)
            _ = try Self.json(try await app.request(.post, "/v1/tickets/\(claimed)/claim", key: leaver.key))
            let assigned = try await app.ticket(customer: customer, status: "open", assignee: agentID)
            let solved = try await app.ticket(customer: customer, status: "solved", assignee: agentID)
            // A colleague holds a live claim on one of the leaver's tickets: it becomes theirs (unassigned
            // under the claim, it was stranded once the claim lapsed).
            let otherID = try #require(UUID(uuidString: other.id))
            let shared = try await app.ticket(customer: customer, status: "open", assignee: agentID)
            try await app.execute("UPDATE tickets SET claim_agent_id = \(otherID), claim_expires_at = now() + interval '10 minutes' WHERE id = \(shared)")

            // Just used, so the key is in this process's one-second cache: refused all the same after.
            #expect(try await app.request(.get, "/v1/me", key: leaver.key).status == .ok)
            let gone = try Self.json(try await app.request(.delete, "/v1/agents/\(leaver.id)", key: admin))
            #expect(gone["active"] as? Bool == false)
            #expect(gone["availability"] as? String == "offline")
            #expect(gone["roles"] as? [String] == [], "its keys are revoked")
            try expectProblem(try await app.request(.get, "/v1/me", key: leaver.key), .unauthorized, "unauthenticated")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE claim_agent_id = \(agentID) OR (assignee_id = \(agentID) AND id <> \(solved))") == 0)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(solved) AND assignee_id = \(agentID)") == 1, "history keeps its assignee")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(shared) AND assignee_id = \(otherID) AND claim_agent_id = \(otherID)") == 1)
            // Reopened (the customer wrote again), it goes back to the queue rather than wait for the leaver.
            let kept = try await app.ticket(customer: customer, status: "solved", assignee: try #require(UUID(uuidString: other.id)))
            try await app.execute("UPDATE tickets SET status = 'open' WHERE id IN (\(solved), \(kept))")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(solved) AND assignee_id IS NULL") == 1)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(kept) AND assignee_id IS NOT NULL") == 1, "an active agent keeps theirs")
            // One whose assignee is offline goes back to the queue too (nobody could reach it); away keeps it.
            let whileOffline = try await app.ticket(customer: customer, status: "solved", assignee: otherID)
            try await app.execute("UPDATE agents SET availability = 'offline' WHERE id = \(otherID)")
            try await app.execute("UPDATE tickets SET status = 'open' WHERE id = \(whileOffline)")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(whileOffline) AND assignee_id IS NULL") == 1)
            // Reopened and given to that offline agent in one change (a supervisor's), it stays theirs.
            let givenBack = try await app.ticket(customer: customer, status: "solved", assignee: agentID)
            try await app.execute("UPDATE tickets SET status = 'open', assignee_id = \(otherID) WHERE id = \(givenBack)")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(givenBack) AND assignee_id = \(otherID)") == 1)
            let whileAway = try await app.ticket(customer: customer, status: "solved", assignee: otherID)
            try await app.execute("UPDATE agents SET availability = 'away' WHERE id = \(otherID)")
            try await app.execute("UPDATE tickets SET status = 'open' WHERE id = \(whileAway)")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(whileAway) AND assignee_id = \(otherID)") == 1)
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE ticket_id = \(solved) AND type = 'ticket.updated'
                  AND data->'changes'->'assignee_id'->>'from' = \(leaver.id) AND NOT (data->'changes'->'assignee_id' ? 'to')
                """) == 1)
            #expect(try await app.eventTypes(ticket: claimed).suffix(2) == ["ticket.claim_broken", "ticket.updated"])
            #expect(try await app.eventTypes(ticket: assigned).last == "ticket.updated")
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type = 'agent.deactivated'
                  AND data = jsonb_build_object('agent_id', \(leaver.id), 'keys_revoked', 1, 'claims_released', 1, 'tickets_returned', 3)
                """) == 1)

            #expect(try await app.request(.delete, "/v1/agents/\(leaver.id)", key: admin).status == .ok)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'agent.deactivated'") == 1)
            // No new key acts for the leaver, nor for the automatic agent, nor for an agent that never was.
            for agent in [leaver.id, "00000000-0000-4000-8000-00000000a070", UUID().uuidString.lowercased()] {
                let key = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"again","role":"agent","agent_id":"\#(agent)"}"#)
                try expectProblem(key, .unprocessableContent, "validation-failed")
                #expect(key.text.contains("/agent_id"), "\(key.text)")
            }
            try expectProblem(
                try await app.request(.patch, "/v1/agents/\(leaver.id)", key: admin, json: #"{"display_name":"戻り"}"#), .conflict, "agent-inactive")
            // The address is free for the next person; the leaver is listed only when asked.
            _ = try Self.json(try await app.request(.post, "/v1/agents", key: admin, json: #"{"display_name":"後任","email":"leaver@shop.example"}"#), .created)
            let listed = try Self.json(try await app.request(.get, "/v1/agents", key: admin))
            #expect((listed["items"] as? [[String: Any]])?.contains { $0["id"] as? String == leaver.id } == false)
            let everyone = try Self.json(try await app.request(.get, "/v1/agents?include_inactive=true", key: admin))
            #expect((everyone["items"] as? [[String: Any]])?.contains { $0["id"] as? String == leaver.id } == true)
        }
    }

    @Test("a claim or a pull in flight as its agent is deactivated takes nothing: the ticket is not left assigned to someone gone")
    func deactivatedAgentClaimsNothing() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let leaver = try await Self.agent(app, admin, #"{"display_name":"退職者","email":"leaver@shop.example"}"#)
            let agentID = try #require(UUID(uuidString: leaver.id))
            let customer = try await app.customer()
            let unassigned = try await app.ticket(customer: customer)
            let theirs = try await app.ticket(customer: customer, status: "open", assignee: agentID)
            // The deactivation as a request already past its key check sees it: committed, keys not yet revoked.
            try await app.execute("UPDATE agents SET active = false WHERE id = \(agentID)")
            try expectProblem(try await app.request(.post, "/v1/tickets/\(unassigned)/claim", key: leaver.key), .forbidden, "forbidden")
            #expect(try await app.request(.post, "/v1/queue/next", key: leaver.key).status == .noContent)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE claim_agent_id IS NOT NULL") == 0)
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(unassigned) AND assignee_id IS NULL") == 1)
            // Its own ticket, and one whose claim lapsed, are not pulled either.
            try await app.execute("UPDATE tickets SET claim_agent_id = \(agentID), claim_expires_at = now() - interval '1 minute' WHERE id = \(theirs)")
            #expect(try await app.request(.post, "/v1/queue/next", key: leaver.key).status == .noContent)
        }
    }
}
