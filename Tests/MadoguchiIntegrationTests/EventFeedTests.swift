import Foundation
import HummingbirdTesting
import NIOCore
import HTTPTypes
import PostgresNIO
import Synchronization
import Testing
@testable import Madoguchi

/// The event feed as dashboards follow it: every event exactly once, even when transactions commit
/// in another order than they began.
@Suite("The event feed", .timeLimit(.minutes(15)))
struct EventFeedTests {
    @Test("announcements are paced: the first of a burst goes out at once, then at most one per interval")
    func pacedAnnouncements() async throws {
        let database = Database(configuration: try await TestCluster.makeDatabase(), logger: TestCluster.logger)
        let poolRun = Task { await database.client.run() }
        let heard = Atomic<Int>(0)
        let (listening, signalListening) = AsyncStream<Void>.makeStream()
        let listener = Task {
            try await database.withConnection { connection in
                try await connection.listenUnlessClosed(on: "madoguchi_events") { notifications in
                    signalListening.yield()
                    for try await _ in notifications { heard.add(1, ordering: .relaxed) }
                }
            }
        }
        for await _ in listening { break }
        // The LISTEN may take effect after the sequence is handed over (under a loaded full run, the
        // burst was over first and nothing was heard): notify until the listener hears it.
        let deadline = ContinuousClock.now + .seconds(30)
        while heard.load(ordering: .relaxed) == 0, ContinuousClock.now < deadline {
            _ = try await database.withConnection { try await $0.run("SELECT pg_notify('madoguchi_events', '')", logger: TestCluster.logger) }
            try await Task.sleep(for: .milliseconds(50))
        }
        try #require(heard.load(ordering: .relaxed) > 0, "the listener never heard a notification")
        try await Task.sleep(for: .milliseconds(500))  // a probe still on its way is heard before the count restarts
        heard.store(0, ordering: .relaxed)
        let announcer = EventAnnouncer()
        let started = ContinuousClock.now
        for _ in 0..<200 {
            announcer.announce(on: database)
            try await Task.sleep(for: .milliseconds(1))
        }
        let elapsed = ContinuousClock.now - started
        // Until the burst's last announcement is heard (slow under a loaded run), and a while longer:
        // waiting longer only lets more arrive, which the upper bound then counts.
        while heard.load(ordering: .relaxed) < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(500))
        let count = heard.load(ordering: .relaxed)
        #expect(count >= 2, "the burst's first and last commits are both announced")
        // Paced: one at the start, one per interval while commits came, and the burst's last, which may
        // go out an interval and a round trip after it ended. Unpaced, nearly every other commit sent
        // one (one in flight at a time, the rest coalesced): about a hundred here.
        #expect(Double(count) <= elapsed / EventAnnouncer.minimumInterval + 3, "\(count) announcements in \(elapsed)")
        listener.cancel()
        poolRun.cancel()
        await poolRun.value
    }

    /// Writes `count` events from one transaction, held open `hold` before it commits: `ticket.updated`
    /// with no change, the writer and the event's number in it carried as `version` (see `origin`), so
    /// they still match the documented payload. The first event is written (and given its id) before
    /// the hold, not with the rest at the end as a transaction's events usually are: so that ids are
    /// taken in one order and committed in another, the case the feed must get right.
    static func write(_ app: TestApp, writer: Int, count: Int, first: Int = 0, hold: Duration) async throws {
        try await app.database.withTransaction { connection in
            let events = EventStore(logger: TestCluster.logger)
            for n in first..<(first + count) {
                try await events.record(
                    .ticketUpdated, actor: nil, data: ["changes": [String: Any](), "version": writer * 1000 + n], on: connection)
                if n == first {
                    try await events.writeHeldBack(on: connection)
                    try await Task.sleep(for: hold)
                }
            }
        }
    }

    /// The writer and number of an event `write` made, from its `data`.
    static func origin(_ data: Any?) -> (writer: Int, n: Int)? {
        guard let version = (data as? [String: Any])?["version"] as? Int else { return nil }
        return (version / 1000, version % 1000)
    }

    /// Follows the feed from the start with long polls until `expected` events came or `timeout`.
    static func follow(_ app: TestApp, key: String, expected: Int, timeout: Duration, query: String = "") async throws -> [[String: Any]] {
        var seen: [[String: Any]] = []
        var cursor: String?
        let start = ContinuousClock.now
        while seen.count < expected && ContinuousClock.now - start < timeout {
            let after = cursor.map { "&after=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" } ?? ""
            let page = try await app.request(.get, "/v1/events?limit=50&wait=2\(after)\(query)", key: key)
            #expect(page.status == .ok, "\(page.text)")
            let json = try page.json
            seen += (json["items"] as? [[String: Any]]) ?? []
            cursor = json["next_cursor"] as? String
        }
        return seen
    }

    @Test("a transaction's events are written together as it ends, in the order recorded; a rolled-back one writes none")
    func eventsWrittenAtTheEnd() async throws {
        try await TestApp.run { app in
            let before = try await app.count("SELECT count(*) FROM events")
            let events = EventStore(logger: TestCluster.logger)
            let seenInside = try await app.database.withTransaction { connection in
                for n in 0..<3 {
                    try await events.record(.ticketUpdated, actor: nil, data: ["changes": [String: Any](), "version": 9000 + n], on: connection)
                }
                // Held back until the end: not in the table yet, even to this transaction.
                let rows = try await connection.query("SELECT count(*)::int FROM events", logger: TestCluster.logger)
                for try await count in rows.decode(Int.self) { return count }
                return -1
            }
            #expect(seenInside == before)
            let versions = try await app.database.withConnection { connection in
                let rows = try await connection.query(
                    "SELECT (data->>'version')::int FROM events WHERE type = 'ticket.updated' ORDER BY id", logger: TestCluster.logger)
                var versions: [Int] = []
                for try await version in rows.decode(Int.self) { versions.append(version) }
                return versions
            }
            #expect(versions == [9000, 9001, 9002])

            struct Abandon: Error {}
            await #expect(throws: Abandon.self) {
                try await app.database.withTransaction { connection in
                    try await events.record(.ticketUpdated, actor: nil, data: ["changes": [String: Any](), "version": 9100], on: connection)
                    throw Abandon()
                }
            }
            #expect(try await app.count("SELECT count(*) FROM events") == before + 3)
        }
    }

    @Test("20 writers committing out of order, some held open: a follower gets every event exactly once, each transaction's together and in order")
    func outOfOrderCommits() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let writers = 20, perWriter = 5
            async let reading = Self.follow(app, key: dashboard, expected: writers * perWriter, timeout: .seconds(60), query: "&types=ticket.updated")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    // Every third writer holds its transaction open while later ones commit.
                    let hold: Duration = writer % 3 == 0 ? .milliseconds(1500 - writer * 50) : .milliseconds(writer * 10)
                    group.addTask { try await Self.write(app, writer: writer, count: perWriter, hold: hold) }
                }
                try await group.waitForAll()
            }
            let events = try await reading
            let pairs = events.compactMap { event -> (Int, Int)? in
                Self.origin(event["data"])
            }
            #expect(pairs.count == writers * perWriter, "got \(pairs.count)")
            #expect(Set(pairs.map { "\($0.0)/\($0.1)" }).count == writers * perWriter, "an event came twice")
            // A transaction's events arrive together and in their own order.
            for writer in 0..<writers {
                let positions = pairs.enumerated().filter { $0.element.0 == writer }.map(\.offset)
                #expect(positions == Array((positions.first ?? 0)..<((positions.first ?? 0) + perWriter)), "writer \(writer) interleaved: \(positions)")
                #expect(pairs.filter { $0.0 == writer }.map(\.1) == Array(0..<perWriter))
            }
            // And a late commit was not skipped: some event arrived after one with a larger id.
            let ids = events.compactMap { $0["id"] as? Int }
            #expect(ids != ids.sorted(), "the held transactions should have committed after later ones")
        }
    }

    @Test("transaction ids of different lengths (99 → 100 → 1000) are read in numeric order: one event at a time, nothing skipped or repeated")
    func transactionIDsCrossingAPowerOfTen() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let horizon = try await app.count("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            try #require(horizon > 102, "the cluster has not reached transaction 102 yet (\(horizon))")
            // Events of finished transactions (below the horizon) around each power of ten, so their ids
            // differ in length, inserted out of order. Read as text, "100" sorts before "99": a follower
            // paging by (xid, id) would skip from 99 to 100 and never see 99's neighbours.
            let powers = sequence(first: 10, next: { $0 * 10 }).prefix { $0 + 2 < horizon }
            let xids = powers.flatMap { [$0 + 1, $0 - 2, $0, $0 - 1] }.reversed()
            for xid in xids {
                try await app.execute("""
                    INSERT INTO events (type, data, xid)
                    VALUES ('ticket.updated', jsonb_build_object('changes', '{}'::jsonb, 'version', \(xid)), \(String(xid))::xid8)
                    """)
            }
            for limit in [1, 3] {
                var versions: [Int] = []
                var after = ""
                for _ in 0..<(xids.count + 2) {
                    let page = try await app.request(.get, "/v1/events?limit=\(limit)\(after)", key: dashboard).json
                    let items = (page["items"] as? [[String: Any]]) ?? []
                    versions += items.compactMap { ($0["data"] as? [String: Any])?["version"] as? Int }
                    after = "&after=" + (try #require(page["next_cursor"] as? String)).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                    if items.isEmpty { break }
                }
                #expect(versions == xids.sorted(), "limit \(limit)")
            }
        }
    }

    @Test("a long transaction holds later events back until it ends, and the cursor does not move past them")
    func heldBack() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let start = try #require(try await app.request(.get, "/v1/events?limit=500", key: dashboard).json["next_cursor"] as? String)
            let after = "after=\(start.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
            try await app.database.withTransaction { connection in
                try await connection.query("SELECT pg_current_xact_id()", logger: TestCluster.logger)
                try await Self.write(app, writer: 2, count: 1, hold: .zero)
                let page = try await app.request(.get, "/v1/events?\(after)", key: dashboard).json
                #expect((page["items"] as? [[String: Any]])?.isEmpty == true, "an event passed an older transaction still running: \(page)")
                #expect(page["next_cursor"] as? String == start, "the cursor moved past an event not yet handed out")
            }
            let released = try await app.request(.get, "/v1/events?\(after)&wait=5", key: dashboard).json
            #expect((released["items"] as? [[String: Any]])?.count == 1, "\(released)")
        }
    }

    @Test("a long transaction in another database on the same cluster holds nothing back")
    func otherDatabase() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let start = try #require(try await app.request(.get, "/v1/events?limit=500", key: dashboard).json["next_cursor"] as? String)
            let after = "after=\(start.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
            let elsewhere = try await TestCluster.makeNamedDatabase(forFeed: true).configuration
            try await TestCluster.withDatabase(elsewhere) { other in
                try await other.withTransaction { connection in
                    // Another application's batch, begun first and still running.
                    try await connection.query("SELECT pg_current_xact_id()", logger: TestCluster.logger)
                    try await Self.write(app, writer: 3, count: 1, hold: .zero)
                    let page = try await app.request(.get, "/v1/events?\(after)", key: dashboard).json
                    #expect((page["items"] as? [[String: Any]])?.count == 1, "held back by another database's transaction: \(page)")
                    #expect(page["next_cursor"] as? String != start)
                }
            }
        }
    }

    @Test("a long poll returns as soon as an event commits, not at its timeout")
    func longPoll() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let end = try await app.request(.get, "/v1/events?limit=500", key: dashboard).json["next_cursor"] as? String ?? ""
            let port = try #require(app.client.port)
            // A client of our own: the app's test client gives up after 20 s.
            async let waited = TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { client in
                try await client.execute(.init("/v1/events?wait=60&after=\(end.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)",
                                               method: .get, headers: [.authorization: "Bearer \(dashboard)"]))
            }
            let start = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(500))
            try await Self.write(app, writer: 1, count: 1, hold: .zero)
            let response = try await waited
            let elapsed = ContinuousClock.now - start
            let page = try JSONSerialization.jsonObject(with: Data(buffer: response.body ?? ByteBuffer())) as? [String: Any]
            #expect((page?["items"] as? [[String: Any]])?.count == 1)
            // Milliseconds on a quiet machine; a loaded full run once took 36 s (when another
            // database's transactions still held the horizon). The bound only tells a wake-up from
            // the 60 s timeout, counted from the poll's start (`madoguchi bench events` measures the lag).
            #expect(elapsed < .seconds(50), "woken by the commit, not the 60 s timeout (took \(elapsed))")
        }
    }

    @Test("a key revoked while its long poll waits gets no more events: the poll ends in 401")
    func longPollOfARevokedKey() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let (dashboard, record) = try await app.key(.dashboard)
            let admin = try await app.keySecret(.admin)
            let end = try await app.request(.get, "/v1/events?limit=500", key: dashboard).json["next_cursor"] as? String ?? ""
            let port = try #require(app.client.port)
            async let waited = TestClient.withClient(host: "localhost", port: port, configuration: TestApp.patient) { client in
                try await client.execute(.init("/v1/events?wait=60&after=\(end.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)",
                                               method: .get, headers: [.authorization: "Bearer \(dashboard)"]))
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await app.request(.delete, "/v1/api-keys/\(record.id.uuidString.lowercased())", key: admin).status == .ok)
            try await Self.write(app, writer: 1, count: 1, hold: .zero)
            let response = try await waited
            #expect(response.status == .unauthorized, "\(String(buffer: response.body ?? ByteBuffer()))")
        }
    }

    @Test("Server-Sent Events: 20 writers committing out of order; after a disconnect mid-way, Last-Event-ID resumes exactly where it stopped")
    func serverSentEvents() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let port = try #require(app.client.port)
            let writers = 20, perWriter = 2
            var first: SSEClient! = try SSEClient(port: port, path: "/v1/events/stream?types=ticket.updated", headers: ["Authorization": "Bearer \(dashboard)"])
            // Without a cursor the stream starts at the newest event when it is answered: write after that.
            #expect(await first.head(timeout: .seconds(20)).hasPrefix("HTTP/1.1 200"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    let hold: Duration = writer % 3 == 0 ? .milliseconds(1000 - writer * 40) : .milliseconds(writer * 5)
                    group.addTask { try await Self.write(app, writer: writer, count: perWriter, hold: hold) }
                }
                try await group.waitForAll()
            }
            // Hang up in the middle of a transaction's events.
            // Reads return once they have their count; the bound is for a full parallel run, where the
            // feed cluster's other tests (creating databases) hold the horizon back (34 of 40 in 20 s once).
            let received = await first.read(count: 17, timeout: .seconds(60))
            #expect(received.count == 17)
            #expect(received.allSatisfy { $0.type == "ticket.updated" && $0.id != nil })
            first = nil  // closes the socket
            let last = try #require(received.last?.id)
            // Come back as EventSource does (and with the key as a query parameter, as a browser must).
            let second = try SSEClient(port: port, path: "/v1/events/stream?types=ticket.updated&access_token=\(dashboard)", headers: ["Last-Event-ID": last])
            let rest = await second.read(count: writers * perWriter - 17, timeout: .seconds(60))
            let pairs = (received + rest).compactMap { event -> (Int, Int)? in
                Self.origin((try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])?["data"])
            }
            #expect(pairs.count == writers * perWriter, "got \(pairs.count)")
            #expect(Set(pairs.map { "\($0.0)/\($0.1)" }).count == writers * perWriter, "an event came twice or went missing")
            for writer in 0..<writers {
                let positions = pairs.enumerated().filter { $0.element.0 == writer }.map(\.offset)
                #expect(positions.count == perWriter && positions.last! - positions.first! == perWriter - 1, "writer \(writer) interleaved: \(positions)")
            }
        }
    }

    @Test("a stream ends within a second or two of its key's revocation; reopened with it, 401")
    func streamEndsWhenItsKeyIsRevoked() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let (dashboard, record) = try await app.key(.dashboard)
            let port = try #require(app.client.port)
            let stream = try SSEClient(port: port, path: "/v1/events/stream", headers: ["Authorization": "Bearer \(dashboard)"])
            #expect(await stream.head(timeout: .seconds(20)).hasPrefix("HTTP/1.1 200"))
            #expect(await !stream.ends(within: .seconds(3)), "a stream whose key is in force stays open")
            let admin = try await app.keySecret(.admin)
            #expect(try await app.request(.delete, "/v1/api-keys/\(record.id.uuidString.lowercased())", key: admin).status == .ok)
            // Bounded generously: on a loaded machine the check that sees the revocation can run late.
            #expect(await stream.ends(within: .seconds(30)), "the revoked key's stream is over")
            let reopened = try SSEClient(port: port, path: "/v1/events/stream", headers: ["Authorization": "Bearer \(dashboard)"])
            #expect(await reopened.head(timeout: .seconds(20)).hasPrefix("HTTP/1.1 401"))
        }
    }

    @Test("Server-Sent Events: a stream opened without a cursor that breaks before any event resumes where it started")
    func quietStreamResumes() async throws {
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let port = try #require(app.client.port)
            var first: SSEClient! = try SSEClient(port: port, path: "/v1/events/stream?types=ticket.updated", headers: ["Authorization": "Bearer \(dashboard)"])
            #expect(await first.head(timeout: .seconds(20)).hasPrefix("HTTP/1.1 200"))
            let last = try #require(await first.lastID(timeout: .seconds(20)), "the stream's first block names where it starts")
            first = nil  // a deploy, a proxy: the connection breaks while nothing happened
            // Written while EventSource waits to reconnect.
            try await Self.write(app, writer: 7, count: 1, hold: .zero)
            let second = try SSEClient(port: port, path: "/v1/events/stream?types=ticket.updated&access_token=\(dashboard)", headers: ["Last-Event-ID": last])
            let missed = await second.read(count: 1, timeout: .seconds(60))
            #expect(missed.count == 1 && missed.first?.type == "ticket.updated", "the event written between the two connections")
        }
    }

    @Test("forged, foreign and malformed cursors, unknown types and a bad limit are clear 400s")
    func badInput() async throws {
        let foreignCursor = Mutex("")
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            try await Self.write(app, writer: 1, count: 1, hold: .zero)
            let cursor = try await app.request(.get, "/v1/events", key: dashboard).json["next_cursor"] as? String ?? ""
            foreignCursor.withLock { $0 = cursor }
        }
        try await TestApp.run(followsFeed: true) { app in
            let dashboard = try await app.keySecret(.dashboard)
            try await Self.write(app, writer: 1, count: 1, hold: .zero)
            let own = try #require(try await app.request(.get, "/v1/events", key: dashboard).json["next_cursor"] as? String)
            // The same position with the signature of another: altered.
            let foreign = foreignCursor.withLock { $0 }
            let parts = own.split(separator: ".")
            let forged = parts[0] + "." + String(parts[1].reversed())
            for (cursor, words) in [(String(forged), "altered"), (foreign, "another Madoguchi installation"), ("not-a-cursor", "not a cursor")] {
                let response = try await app.request(.get, "/v1/events?after=\(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)", key: dashboard)
                try expectProblem(response, .badRequest, "invalid-cursor")
                #expect((try response.json["detail"] as? String)?.contains(words) == true, "\(response.text)")
            }
            // A reconnecting EventSource's Last-Event-ID is named as what was wrong, not `after`.
            let resumed = try await app.request(.get, "/v1/events/stream", key: dashboard, headers: [HTTPField.Name("Last-Event-ID")!: "not-a-cursor"])
            try expectProblem(resumed, .badRequest, "invalid-cursor")
            #expect((try resumed.json["errors"] as? [[String: String]])?.first?["pointer"] == "Last-Event-ID", "\(resumed.text)")
            try expectProblem(try await app.request(.get, "/v1/events?types=ticket.nope", key: dashboard), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/events?limit=0", key: dashboard), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, "/v1/events", key: try await app.keySecret(.agent)), .forbidden, "forbidden")
        }
    }

    @Test("retention removes old events, keeps what an active webhook has yet to receive, and nothing else may delete events; the delivery log's old attempts go too")
    func retention() async throws {
        try await TestApp.run(followsFeed: true, checksEventPayloads: false, configure: { $0.webhooks.runsInServe = false }) { app in
            try await app.execute("INSERT INTO events (type, occurred_at, data) VALUES ('ticket.updated', now() - interval '40 days', '{\"old\":1}')")
            try await app.execute("INSERT INTO events (type, occurred_at, data) VALUES ('ticket.updated', now() - interval '35 days', '{\"old\":2}')")
            try await app.execute("INSERT INTO events (type, data) VALUES ('ticket.updated', '{\"new\":1}')")
            // A webhook whose cursor sits just after the first old event: the second is still owed to it.
            try await app.execute("""
                INSERT INTO webhook_endpoints (url, secrets, cursor_xid, cursor_event)
                SELECT 'https://hooks.example.jp/x', ARRAY['whsec_AAAA'], xid, id FROM events WHERE data->>'old' = '1'
                """)
            // A run told to stop before its first batch removes nothing and says it is not finished.
            let stopped = try await EventRetention(database: app.database, logger: TestCluster.logger).removeEvents(olderThan: 30, while: { false })
            #expect(stopped.removed == 0 && !stopped.finished)
            let removed = try await EventRetention(database: app.database, logger: TestCluster.logger).removeEvents(olderThan: 30)
            #expect(removed.removed == 1 && removed.finished)
            #expect(try await app.count("SELECT count(*) FROM events WHERE data ? 'old'") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE data ? 'new'") == 1)
            await SchemaTests.expectRefused(app, .insufficientPrivilege, "DELETE FROM events")

            // The delivery log goes with the same age: an old attempt, not a recent one.
            try await app.execute("""
                INSERT INTO webhook_deliveries (endpoint_id, event_id, webhook_id, attempt, status, created_at)
                SELECT id, 1, 'msg_old', 1, 500, now() - interval '31 days' FROM webhook_endpoints
                UNION ALL SELECT id, 2, 'msg_new', 1, 200, now() - interval '29 days' FROM webhook_endpoints
                """)
            let forgotten = try await EventRetention(database: app.database, logger: TestCluster.logger).removeDeliveries(olderThan: 30, batch: 1)
            #expect(forgotten.removed == 1)
            #expect(try await app.count("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = 'msg_new'") == 1)
        }
    }
    @Test("retention removes the feed in its order, up to the first young event; a cursor it passed is 410 cursor-expired on the feed and the stream, one at its mark resumes")
    func expiredCursor() async throws {
        try await TestApp.run(checksEventPayloads: false) { app in
            for (name, age) in [("e0", "45 days"), ("e1", "40 days"), ("e2", "0 days"), ("e3", "35 days")] {
                try await app.execute("INSERT INTO events (type, occurred_at, data) VALUES ('ticket.updated', now() - \(age)::interval, jsonb_build_object('name', \(name)::text))")
            }
            let dashboard = try await app.keySecret(.dashboard)
            // The feed shows an event once every transaction begun before it has ended, on the whole
            // cluster: another test's open transaction can hold these back for a moment.
            var items: [[String: Any]] = []
            _ = try await ChildProcess.eventually(timeout: .seconds(60)) {
                items = try await app.request(.get, "/v1/events", key: dashboard).json["items"] as? [[String: Any]] ?? []
                return items.count == 4
            }
            #expect(items.compactMap { ($0["data"] as? [String: Any])?["name"] as? String } == ["e0", "e1", "e2", "e3"])
            let cursors = items.compactMap { $0["cursor"] as? String }
            try #require(cursors.count == 4)

            let removed = try await EventRetention(database: app.database, logger: TestCluster.logger).removeEvents(olderThan: 30)
            // e3 is old too, but comes after the young e2 in the feed: it waits for e2's turn.
            #expect(removed.removed == 2)
            #expect(try await app.strings("SELECT data->>'name' FROM events ORDER BY xid, id") == ["e2", "e3"])

            func names(_ response: TestClient.Response) throws -> [String] {
                (try response.json["items"] as? [[String: Any]])?.compactMap { ($0["data"] as? [String: Any])?["name"] as? String } ?? []
            }
            let expired = try await app.request(.get, "/v1/events?after=\(cursors[0])", key: dashboard)
            try expectProblem(expired, .gone, "cursor-expired")
            #expect((try expired.json["detail"] as? String)?.contains("removed by retention") == true)
            // At the mark: the follower saw e1, and nothing it has not seen is gone.
            #expect(try names(try await app.request(.get, "/v1/events?after=\(cursors[1])", key: dashboard)) == ["e2", "e3"])
            #expect(try names(try await app.request(.get, "/v1/events", key: dashboard)) == ["e2", "e3"])
            let resumed = try await app.request(.get, "/v1/events/stream", key: dashboard, headers: [HTTPField.Name("Last-Event-ID")!: cursors[0]])
            try expectProblem(resumed, .gone, "cursor-expired")
            #expect((try resumed.json["detail"] as? String)?.contains("Last-Event-ID") == true)
            try expectProblem(try await app.request(.get, "/v1/events/stream?after=\(cursors[0])", key: dashboard), .gone, "cursor-expired")

            // Several types go comma-separated; given twice, the second was silently dropped.
            let twice = try await app.request(.get, "/v1/events?types=ticket.created&types=reply.sent", key: dashboard)
            try expectProblem(twice, .badRequest, "invalid-parameter")
            #expect((try twice.json["errors"] as? [[String: String]])?.first?["message"]?.contains("types=ticket.created,reply.sent") == true)
            // A later run moves the mark on; the mark never moves back.
            try await app.execute("INSERT INTO events (type, occurred_at, data) VALUES ('ticket.updated', now(), '{\"name\":\"e4\"}')")
            #expect(try await EventRetention(database: app.database, logger: TestCluster.logger).removeEvents(olderThan: 30).removed == 0)
            #expect(try await app.request(.get, "/v1/events?after=\(cursors[1])", key: dashboard).status == .ok)
        }
    }
    @Test("a stream catching up when retention removes events it has not reached yet ends, rather than pass them over; a poll reading on is 410")
    func streamBehindRetentionEnds() async throws {
        try await TestApp.run(checksEventPayloads: false) { app in
            for (name, age) in [("e0", "45 days"), ("e1", "40 days"), ("e2", "0 days")] {
                try await app.execute("INSERT INTO events (type, occurred_at, data) VALUES ('ticket.updated', now() - \(age)::interval, jsonb_build_object('name', \(name)::text))")
            }
            let dashboard = try await app.keySecret(.dashboard)
            var cursors: [String] = []
            _ = try await ChildProcess.eventually(timeout: .seconds(60)) {
                cursors = (try await app.request(.get, "/v1/events", key: dashboard).json["items"] as? [[String: Any]] ?? []).compactMap { $0["cursor"] as? String }
                return cursors.count == 3
            }
            // A stream opened at e0, kept before it read on (as a slow follower is), and retention meanwhile.
            let feed = EventFeed(logger: TestCluster.logger)
            let key = try await app.database.withConnection { try await feed.key(on: $0) }
            let stream = EventStream(database: app.database, feed: feed, notifier: EventNotifier(database: app.database, logger: TestCluster.logger),
                                     key: key, filter: .init(), start: try FeedCursor.decode(cursors[0], with: key), keyID: nil, logger: TestCluster.logger)
            var iterator = stream.makeAsyncIterator()
            let greeting = try await iterator.next()
            #expect(greeting.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("retry:") == true)
            #expect(try await EventRetention(database: app.database, logger: TestCluster.logger).removeEvents(olderThan: 30).removed == 2)
            let after = try await iterator.next()
            #expect(after == nil, "the stream ends: \(after.map { String(decoding: $0, as: UTF8.self) } ?? "")")
            // Reconnecting with its last id, or polling from it, is told why.
            try expectProblem(try await app.request(.get, "/v1/events?after=\(cursors[0])", key: dashboard), .gone, "cursor-expired")
        }
    }

    @Test("a feed retention emptied: the next cursor of the empty page is not refused as expired")
    func emptiedFeed() async throws {
        try await TestApp.run(checksEventPayloads: false) { app in
            try await app.execute("INSERT INTO events (type, occurred_at, data) VALUES ('ticket.updated', now() - interval '40 days', '{}')")
            #expect(try await EventRetention(database: app.database, logger: TestCluster.logger).removeEvents(olderThan: 30).removed == 1)
            let dashboard = try await app.keySecret(.dashboard)
            let empty = try await app.request(.get, "/v1/events", key: dashboard)
            let next = try #require(try empty.json["next_cursor"] as? String)
            #expect(try await app.request(.get, "/v1/events?after=\(next)", key: dashboard).status == .ok)
        }
    }
}
