import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Claims, the queue, ticket changes and notes", .timeLimit(.minutes(15)))
struct TicketWorkTests {
    static func etag(_ response: some HTTPTestResponse) throws -> String { try #require(response.headers[.eTag]) }

    // MARK: - Lifecycle

    @Test("every status change outside the transition table is 409 naming the allowed ones; every one inside succeeds")
    func stateMachine() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let customer = try await app.customer()
            for from in Ticket.Status.allCases {
                for to in Ticket.Status.allCases where to != from {
                    let ticket = try await app.ticket(customer: customer, status: from.rawValue)
                    let response = try await app.request(
                        .patch, "/v1/tickets/\(ticket)", key: supervisor, headers: [.ifMatch: "\"1\""], json: #"{"status":"\#(to.rawValue)"}"#)
                    if from.allowedNext.contains(to) {
                        #expect(response.status == .ok, "\(from) → \(to): \(response.text)")
                        #expect(try response.json["status"] as? String == to.rawValue)
                        #expect(response.headers[.eTag] == "\"2\"")
                    } else {
                        try expectProblem(response, .conflict, "invalid-transition")
                        #expect(try response.json["allowed"] as? [String] == from.allowedNext.map(\.rawValue), "\(from) → \(to)")
                        let unchanged = try await app.request(.get, "/v1/tickets/\(ticket)", key: supervisor)
                        #expect(try unchanged.json["status"] as? String == from.rawValue)
                    }
                }
            }
        }
    }

    @Test("a write without If-Match is 428; a stale, weak or unmatched one 412, * or a list holding the current tag passes; the change is an event")
    func optimisticConcurrency() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let ticket = try await app.ticket(customer: try await app.customer())
            try expectProblem(
                try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, json: #"{"priority":"high"}"#), .preconditionRequired, "precondition-required")
            // RFC 9110 §13.1.1: strong comparison, so a weak tag never matches: 412, not a malformed request.
            try expectProblem(
                try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "W/\"1\""], json: #"{"priority":"high"}"#),
                .preconditionFailed, "precondition-failed")
            try expectProblem(
                try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"7\", W/\"1\""], json: #"{"priority":"high"}"#),
                .preconditionFailed, "precondition-failed")
            for garbage in ["1", "\"1", "\"1\" \"2\"", ","] {
                try expectProblem(
                    try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: garbage], json: #"{"priority":"high"}"#),
                    .badRequest, "invalid-parameter")
            }

            // A queue must exist before a ticket can be moved to it.
            let nowhere = try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"1\""], json: #"{"queue":"shipping"}"#)
            try expectProblem(nowhere, .unprocessableContent, "validation-failed")
            #expect((try nowhere.json["errors"] as? [[String: String]])?.first?["pointer"] == "/queue")
            try await app.execute("INSERT INTO queues (name) VALUES ('shipping')")
            let first = try await app.request(
                .patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"1\""],
                json: #"{"priority":"high","tags":["返金"," 至急 ","返金"],"category":"配送","queue":"shipping"}"#)
            #expect(first.status == .ok, "\(first.text)")
            #expect(try first.json["priority"] as? String == "high")
            #expect(try first.json["tags"] as? [String] == ["返金", "至急"])
            #expect(try first.json["queue"] as? String == "shipping")
            #expect(try Self.etag(first) == "\"2\"")

            // Someone still holding version 1 must not overwrite that.
            let stale = try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"1\""], json: #"{"priority":"low"}"#)
            try expectProblem(stale, .preconditionFailed, "precondition-failed")
            // Asking for what is already there changes nothing, not even the version.
            let same = try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"2\""], json: #"{"priority":"high"}"#)
            #expect(try Self.etag(same) == "\"2\"")
            #expect(try await app.eventTypes(ticket: ticket) == ["ticket.updated"])

            let unknownAgent = try await app.request(
                .patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"2\""], json: #"{"assignee_id":"\#(UUID())"}"#)
            try expectProblem(unknownAgent, .unprocessableContent, "validation-failed")
            let cleared = try await app.request(
                .patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"2\""], json: #"{"category":"","unassign":true}"#)
            #expect(try cleared.json["category"] == nil)

            // `*` matches whatever the current version is; a list matches when any strong tag does.
            let anyVersion = try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "*"], json: #"{"priority":"low"}"#)
            #expect(anyVersion.status == .ok, "\(anyVersion.text)")
            let current = try Self.etag(anyVersion)
            let listed = try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"1\", \(current)"],
                                               json: #"{"priority":"urgent"}"#)
            #expect(listed.status == .ok, "\(listed.text)")
        }
    }

    // MARK: - Claims

    @Test("claim, renew, conflict naming the holder, release, supervisor break — each recorded")
    func claims() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent, name: "佐藤")
            let suzuki = try await app.key(.agent, name: "鈴木")
            let boss = try await app.key(.supervisor, name: "主任")
            let ticket = try await app.ticket(customer: try await app.customer())

            let claimed = try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: sato.secret)
            #expect(claimed.status == .ok)
            let claim = try #require(try claimed.json["claim"] as? [String: Any])
            #expect(claim["agent_id"] as? String == sato.record.agentID?.uuidString.lowercased())
            #expect(try claimed.json["assignee_id"] as? String == sato.record.agentID?.uuidString.lowercased())
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: sato.secret).status == .ok)  // renewal

            let refused = try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: suzuki.secret)
            try expectProblem(refused, .conflict, "claim-held")
            #expect((try refused.json["claim"] as? [String: String])?["agent_id"] == sato.record.agentID?.uuidString.lowercased())
            // By name too: the colleague to ask.
            #expect((try refused.json["claim"] as? [String: String])?["agent_name"] == "佐藤", "\(refused.text)")
            #expect((try refused.json["detail"] as? String)?.hasPrefix("佐藤 (agent ") == true, "\(refused.text)")
            // Nor may another agent change it or release it while the claim is live.
            let version = try Self.etag(try await app.request(.get, "/v1/tickets/\(ticket)", key: suzuki.secret))
            try expectProblem(
                try await app.request(.patch, "/v1/tickets/\(ticket)", key: suzuki.secret, headers: [.ifMatch: version], json: #"{"status":"solved"}"#),
                .conflict, "claim-held")
            try expectProblem(try await app.request(.delete, "/v1/tickets/\(ticket)/claim", key: suzuki.secret), .conflict, "claim-held")

            let broken = try await app.request(.delete, "/v1/tickets/\(ticket)/claim", key: boss.secret)
            #expect(broken.status == .ok)
            #expect(try broken.json["claim"] == nil)
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: suzuki.secret).status == .ok)
            #expect(try await app.request(.delete, "/v1/tickets/\(ticket)/claim", key: suzuki.secret).status == .ok)
            #expect(try await app.eventTypes(ticket: ticket) == [
                "ticket.claimed", "ticket.claim_renewed", "ticket.claim_broken", "ticket.claimed", "ticket.claim_released",
            ])
            try expectProblem(try await app.request(.post, "/v1/tickets/\(UUID())/claim", key: sato.secret), .notFound, "not-found")
        }
    }

    @Test("a ticket handed to another agent ends the old holder's live claim: they can no longer answer, the new assignee claims at once")
    func reassignedClaim() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent, name: "佐藤")
            let suzuki = try await app.key(.agent, name: "鈴木")
            let boss = try await app.keySecret(.supervisor)
            let ticket = try await app.ticket(customer: try await app.customer())
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: sato.secret).status == .ok)
            let handed = try await app.request(.patch, "/v1/tickets/\(ticket)", key: boss, headers: [.ifMatch: "*"],
                                               json: #"{"assignee_id":"\#(suzuki.record.agentID!.uuidString.lowercased())"}"#)
            #expect(handed.status == .ok, "\(handed.text)")
            #expect(try handed.json["claim"] == nil)
            try expectProblem(try await app.request(.post, "/v1/tickets/\(ticket)/replies", key: sato.secret, json: #"{"body":"x"}"#),
                              .conflict, "claim-required")
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: suzuki.secret).status == .ok)
            #expect(try await app.eventTypes(ticket: ticket).suffix(3) == ["ticket.updated", "ticket.claim_broken", "ticket.claimed"])
            // The holder handing it over themselves releases their claim; a change that keeps the assignee keeps the claim.
            let own = try await app.request(.patch, "/v1/tickets/\(ticket)", key: suzuki.secret, headers: [.ifMatch: "*"], json: #"{"priority":"high"}"#)
            #expect(try own.json["claim"] != nil)
            let away = try await app.request(.patch, "/v1/tickets/\(ticket)", key: suzuki.secret, headers: [.ifMatch: "*"], json: #"{"unassign":true}"#)
            #expect(try away.json["claim"] == nil)
            #expect(try await app.eventTypes(ticket: ticket).suffix(2) == ["ticket.updated", "ticket.claim_released"])
        }
    }

    @Test("a ticket handed back (unassigned, or its assignee deactivated) drops a claim that lapsed, so its queue can hand it out again")
    func handBackDropsLapsedClaim() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent, name: "佐藤")
            let suzuki = try await app.key(.agent, name: "鈴木")
            let boss = try await app.keySecret(.supervisor)
            let lapsedClaims: PostgresQuery = "SELECT count(*) FROM tickets WHERE claim_agent_id IS NOT NULL"
            // Unassigned by a supervisor after the puller's claim lapsed.
            let first = try await app.ticket(customer: try await app.customer())
            #expect(try await app.request(.post, "/v1/tickets/\(first)/claim", key: sato.secret).status == .ok)
            try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 minute' WHERE id = \(first)")
            let unassigned = try await app.request(.patch, "/v1/tickets/\(first)", key: boss, headers: [.ifMatch: "*"], json: #"{"unassign":true}"#)
            #expect(unassigned.status == .ok, "\(unassigned.text)")
            #expect(try await app.count(lapsedClaims) == 0)
            #expect(try await app.eventTypes(ticket: first).last == "ticket.updated", "a lapsed claim ended when it lapsed: no claim event now")
            // Suzuki's claim on Sato's ticket lapsed; Sato leaves, and the ticket goes back to its queue.
            let second = try await app.ticket(customer: try await app.customer())
            let assigned = try await app.request(.patch, "/v1/tickets/\(second)", key: boss, headers: [.ifMatch: "*"],
                                                 json: #"{"assignee_id":"\#(sato.record.agentID!.uuidString.lowercased())"}"#)
            #expect(assigned.status == .ok, "\(assigned.text)")
            try await app.execute("""
                UPDATE tickets SET claim_agent_id = \(suzuki.record.agentID), claim_expires_at = now() - interval '1 minute' WHERE id = \(second)
                """)
            let left = try await app.request(.delete, "/v1/agents/\(sato.record.agentID!.uuidString.lowercased())", key: boss)
            #expect(left.status == .ok, "\(left.text)")
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(second) AND assignee_id IS NULL AND claim_agent_id IS NULL") == 1)
            // A live claim is another matter: it is the holder's until it ends.
            let third = try await app.ticket(customer: try await app.customer())
            #expect(try await app.request(.post, "/v1/tickets/\(third)/claim", key: suzuki.secret).status == .ok)
            #expect(try await app.count(lapsedClaims) == 1)
        }
    }

    @Test("an assignment that waits past the lock timeout for the agent's row (a long deactivation) is 503 try again, not a 500")
    func assigneeRowBusy() async throws {
        try await TestApp.run { app in
            let suzuki = try await app.key(.agent, name: "鈴木")
            let boss = try await app.keySecret(.supervisor)
            let ticket = try await app.ticket(customer: try await app.customer())
            try await app.database.withTransaction { connection in
                try await connection.query("SELECT 1 FROM agents WHERE id = \(suzuki.record.agentID) FOR UPDATE", logger: TestCluster.logger)
                let busy = try await app.request(.patch, "/v1/tickets/\(ticket)", key: boss, headers: [.ifMatch: "*"],
                                                 json: #"{"assignee_id":"\#(suzuki.record.agentID!.uuidString.lowercased())"}"#)
                try expectProblem(busy, .serviceUnavailable, "server-busy")
            }
            #expect(try await app.count("SELECT count(*) FROM tickets WHERE id = \(ticket) AND assignee_id IS NULL") == 1)
        }
    }

    @Test("an expired lease can be taken over")
    func expiredLease() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent)
            let suzuki = try await app.key(.agent)
            let ticket = try await app.ticket(customer: try await app.customer())
            #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: sato.secret).status == .ok)
            try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 second' WHERE id = \(ticket)")
            let takeover = try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: suzuki.secret)
            #expect(takeover.status == .ok)
            #expect((try takeover.json["claim"] as? [String: Any])?["agent_id"] as? String == suzuki.record.agentID?.uuidString.lowercased())
            try expectProblem(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: sato.secret), .conflict, "claim-held")
        }
    }

    @Test("the queue hands out a lapsed claim in its place by urgency, never a live one, and nothing when only live claims are left")
    func queueTakesLapsedClaims() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent)
            let suzuki = try await app.key(.agent)
            let customer = try await app.customer()
            let (lapsed, free, held) = (try await app.ticket(customer: customer), try await app.ticket(customer: customer), try await app.ticket(customer: customer))
            try await app.execute("UPDATE tickets SET priority = 'urgent' WHERE id IN (\(lapsed), \(held))")
            for ticket in [lapsed, held] {
                #expect(try await app.request(.post, "/v1/tickets/\(ticket)/claim", key: sato.secret).status == .ok)
            }
            try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 second' WHERE id = \(lapsed)")
            // The urgent ticket whose claim lapsed comes before the normal one nobody holds.
            for expected in [lapsed, free] {
                let next = try await app.request(.post, "/v1/queue/next", key: suzuki.secret)
                #expect(next.status == .ok)
                #expect(try next.json["id"] as? String == expected.uuidString.lowercased())
            }
            #expect(try await app.request(.post, "/v1/queue/next", key: suzuki.secret).status == .noContent)
        }
    }

    @Test("a ticket assigned to an agent whose claim on it lapsed comes back to them from the queue, whatever its queue, before another's lapsed one")
    func ownLapsedClaim() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent)
            let suzuki = try await app.key(.agent)
            try await app.execute("INSERT INTO queues (name) VALUES ('returns')")
            try await app.execute("UPDATE agents SET queues = '{general}' WHERE id = \(sato.record.agentID)")
            let customer = try await app.customer()
            // The other's ticket is the older: by age alone it would come first.
            let others = try await app.insertReturningID("INSERT INTO tickets (customer_id, channel, queue) VALUES (\(customer), 'email', 'general') RETURNING id")
            let returns = try await app.insertReturningID("INSERT INTO tickets (customer_id, channel, queue) VALUES (\(customer), 'email', 'returns') RETURNING id")
            // Suzuki's claim on a general ticket lapsed first, then Sato's on the returns ticket a supervisor gave him.
            #expect(try await app.request(.post, "/v1/tickets/\(others)/claim", key: suzuki.secret).status == .ok)
            #expect(try await app.request(.post, "/v1/tickets/\(returns)/claim", key: sato.secret).status == .ok)
            try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '2 seconds' WHERE id = \(others)")
            try await app.execute("UPDATE tickets SET claim_expires_at = now() - interval '1 second' WHERE id = \(returns)")
            let next = try await app.request(.post, "/v1/queue/next", key: sato.secret)
            #expect(try next.json["id"] as? String == returns.uuidString.lowercased(), "\(next.text)")
            #expect(try await app.request(.post, "/v1/queue/next", key: sato.secret).json["id"] as? String == others.uuidString.lowercased())
        }
    }

    @Test("two agents race to claim one ticket, 100 times: exactly one wins each race, the other gets 409")
    func claimRaces() async throws {
        try await TestApp.run { app in
            let agents = [try await app.key(.agent), try await app.key(.agent)]
            let customer = try await app.customer()
            let port = try #require(app.client.port)
            try await TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { first in
                try await TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { second in
                    let clients = [first, second]
                    for _ in 0..<100 {
                        let ticket = try await app.ticket(customer: customer)
                        let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                            for index in 0..<2 {
                                group.addTask {
                                    try await clients[index].execute(.init(
                                        "/v1/tickets/\(ticket)/claim", method: .post, headers: [.authorization: "Bearer \(agents[index].secret)"])).status
                                }
                            }
                            return try await group.reduce(into: []) { $0.append($1) }
                        }
                        #expect(statuses.sorted { $0.code < $1.code } == [.ok, .conflict], "\(statuses)")
                    }
                }
            }
        }
    }

    // MARK: - The queue

    @Test("the queue takes urgent before high before normal, then the earliest response deadline, then the oldest; 204 when empty")
    func queueOrder() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let customer = try await app.customer()
            func make(_ priority: String, due: Int?, age: Int) async throws -> UUID {
                try await app.insertReturningID("""
                    INSERT INTO tickets (customer_id, channel, priority, first_response_due_at, created_at, awaiting_reply_since)
                    VALUES (\(customer), 'email', \(priority), now() + make_interval(mins => \(due)::int), now() - make_interval(mins => \(age)::int),
                            now() - make_interval(mins => \(age)::int))
                    RETURNING id
                    """)
            }
            let normalOld = try await make("normal", due: nil, age: 60)
            let highLater = try await make("high", due: 30, age: 1)
            let urgent = try await make("urgent", due: nil, age: 0)
            let highSooner = try await make("high", due: 10, age: 0)
            let lowOldest = try await make("low", due: nil, age: 999)
            let solved = try await app.insertReturningID("INSERT INTO tickets (customer_id, channel, priority, status) VALUES (\(customer), 'email', 'urgent', 'solved') RETURNING id")

            var order: [UUID] = []
            while true {
                let next = try await app.request(.post, "/v1/queue/next", key: agent)
                if next.status == .noContent { break }
                #expect(next.status == .ok)
                let id = try next.json["id"] as? String
                order.append(try #require(id.flatMap(UUID.init(uuidString:))))
            }
            #expect(order == [urgent, highSooner, highLater, normalOld, lowOldest])
            #expect(!order.contains(solved))
        }
    }

    @Test("an agent pulls only from their queues; an agent with none pulls from all")
    func queueMembership() async throws {
        try await TestApp.run { app in
            let shipping = try await app.key(.agent)
            let anyone = try await app.keySecret(.agent)
            try await app.execute("INSERT INTO queues (name) VALUES ('shipping')")
            try await app.execute("UPDATE agents SET queues = '{shipping}' WHERE id = \(shipping.record.agentID)")
            let customer = try await app.customer()
            let general = try await app.ticket(customer: customer)
            let parcel = try await app.insertReturningID("INSERT INTO tickets (customer_id, channel, queue) VALUES (\(customer), 'email', 'shipping') RETURNING id")
            let first = try await app.request(.post, "/v1/queue/next", key: shipping.secret)
            #expect(try first.json["id"] as? String == parcel.uuidString.lowercased())
            #expect(try await app.request(.post, "/v1/queue/next", key: shipping.secret).status == .noContent)
            #expect(try await app.request(.post, "/v1/queue/next", key: anyone).json["id"] as? String == general.uuidString.lowercased())
        }
    }

    @Test("50 agents pulling from 1,000 tickets at once, 4 rounds: each ticket claimed once, all claimed, no 5xx")
    func concurrentQueue() async throws {
        try await TestApp.run(configure: { $0.databasePoolSize = 20 }) { app in
            var agents: [(secret: String, record: APIKeyRecord)] = []
            for index in 0..<50 { agents.append(try await app.key(.agent, name: "agent \(index)")) }
            let customer = try await app.customer()
            let port = try #require(app.client.port)
            // Every round is 1,000 claims by 50 agents racing on one queue; four rounds (a fresh queue each,
            // the last round's claims still live) prove what twenty did at a fifth of the cost.
            for round in 0..<4 {
                try await app.execute("""
                    INSERT INTO tickets (customer_id, channel, subject, priority)
                    SELECT \(customer), 'email', 'round ' || \(round) || ' #' || n, (ARRAY['low','normal','high','urgent'])[1 + n % 4]
                    FROM generate_series(1, 1000) AS n
                    """)
                let claims = try await withThrowingTaskGroup(of: [(String, String)].self) { group in
                    for agent in agents {
                        group.addTask {
                            try await TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { client in
                                var mine: [(String, String)] = []
                                while true {
                                    let response = try await client.execute(.init(
                                        "/v1/queue/next", method: .post, headers: [.authorization: "Bearer \(agent.secret)"]))
                                    if response.status == .noContent { return mine }
                                    guard response.status == .ok, let body = response.body,
                                        let json = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                                        let id = json["id"] as? String
                                    else {
                                        throw EmbeddedPostgresError("round \(round): \(response.status) \(response.body.map { String(buffer: $0) } ?? "")")
                                    }
                                    mine.append((id, agent.record.agentID!.uuidString.lowercased()))
                                }
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(claims.count == 1000, "round \(round)")
                #expect(Set(claims.map(\.0)).count == 1000, "round \(round): a ticket was handed out twice")
                let claimedInDatabase = try await app.count("""
                    SELECT count(*) FROM tickets WHERE subject LIKE \("round \(round) #%") AND claim_agent_id IS NOT NULL
                    """)
                #expect(claimedInDatabase == 1000)
            }
        }
    }

    // MARK: - Notes

    @Test("a note joins the timeline as internal, with mentions checked; it is never a customer message")
    func notes() async throws {
        try await TestApp.run { app in
            let sato = try await app.key(.agent)
            let suzuki = try await app.key(.agent)
            let customer = try await app.customer()
            let ticket = try await app.ticket(customer: customer)
            _ = try await app.inboundMessage(ticket: ticket, customer: customer, body: "届いていません")
            let note = try await app.request(
                .post, "/v1/tickets/\(ticket)/notes", key: sato.secret,
                json: #"{"body":"佐川に確認中。明日までに回答予定。","mentions":["\#(suzuki.record.agentID!.uuidString)"]}"#)
            #expect(note.status == .created, "\(note.text)")
            #expect(try note.json["direction"] as? String == "internal")
            #expect(try note.json["author_agent_id"] as? String == sato.record.agentID?.uuidString.lowercased())
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: sato.secret)
            #expect((try timeline.json["items"] as? [[String: Any]])?.map { $0["direction"] as? String } == ["inbound", "internal"])

            try expectProblem(
                try await app.request(.post, "/v1/tickets/\(ticket)/notes", key: sato.secret, json: #"{"body":"x","mentions":["\#(UUID())"]}"#),
                .unprocessableContent, "validation-failed")
            try expectProblem(
                try await app.request(.post, "/v1/tickets/\(ticket)/notes", key: sato.secret, json: #"{"body":"   "}"#),
                .unprocessableContent, "validation-failed")
            try expectProblem(
                try await app.request(.post, "/v1/tickets/\(UUID())/notes", key: sato.secret, json: #"{"body":"x"}"#), .notFound, "not-found")
            #expect(try await app.eventTypes(ticket: ticket) == ["note.added"])
        }
    }
}

extension TicketWorkTests {
    @Test("limits the decoder does not enforce: too many or too long tags, an over-long note")
    func limits() async throws {
        try await TestApp.run { app in
            let agent = try await app.keySecret(.agent)
            let ticket = try await app.ticket(customer: try await app.customer())
            let tags = (0..<51).map { "\"t\($0)\"" }.joined(separator: ",")
            try expectProblem(
                try await app.request(.patch, "/v1/tickets/\(ticket)", key: agent, headers: [.ifMatch: "\"1\""], json: #"{"tags":[\#(tags)]}"#),
                .unprocessableContent, "validation-failed")
            try expectProblem(
                try await app.request(.post, "/v1/tickets/\(ticket)/notes", key: agent, json: #"{"body":"\#(String(repeating: "あ", count: 20_001))"}"#),
                .unprocessableContent, "validation-failed")
            #expect(try await app.eventTypes(ticket: ticket).isEmpty)
        }
    }
}
