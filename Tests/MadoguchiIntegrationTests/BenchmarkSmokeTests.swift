import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing
@testable import Madoguchi
@testable import MadoguchiBench
import CorpusSupport

/// The benchmarks are not tests of speed (they print ratios; nothing here asserts a rate), but they
/// must keep running: each is run briefly and must have moved work through the service.
@Suite("Benchmarks still run", .timeLimit(.minutes(15)))
struct BenchmarkSmokeTests {
    static var quiet: Logger {
        var logger = Logger(label: "bench-smoke")
        logger.logLevel = .error
        return logger
    }

    @Test("a replay's rate is the mean of pgbench's progress past the warm-up")
    func steadyState() {
        let output = """
            progress: 1.0 s, 120.0 tps, lat 60.1 ms stddev 20.0, 0 failed
            progress: 2.0 s, 300.0 tps, lat 25.0 ms stddev 5.0, 0 failed
            progress: 3.0 s, 800.0 tps, lat 9.9 ms stddev 2.0, 0 failed
            progress: 4.0 s, 900.0 tps, lat 8.8 ms stddev 2.0, 0 failed
            tps = 530.0 (without initial connection time)
            """
        #expect(BenchmarkSupport.progressTPS(output, after: 2) == [800, 900])
        #expect(BenchmarkSupport.progressTPS("tps = 530.0", after: 2).isEmpty)
    }

    @Test("bench webhooks posts signed LINE and Twilio requests and reports both against pgbench")
    func webhooks() async throws {
        var benchmark = WebhookBenchmark()
        benchmark.seconds = 1
        benchmark.clients = 1
        benchmark.customers = 5
        let lines = Mutex<[String]>([])
        try await benchmark.run(logger: Self.quiet) { line in lines.withLock { $0.append(line) } }
        let reported = lines.withLock { $0 }
        for provider in ["line", "twilio", "webform"] {
            let line = try #require(reported.first { $0.hasPrefix(provider) }, "\(reported)")
            // The count, not the rate: one message in 30 s on a loaded machine prints as 0.0/s.
            #expect(Self.figure(after: "messages/s (", in: line) ?? 0 > 0, "\(line)")
            #expect(Self.figure(after: "own SQL through pgbench:", in: line) ?? 0 > 0, "\(line)")
        }
    }

    @Test("bench email takes mail in through the endpoint and replays the service's own SQL for it through pgbench")
    func email() async throws {
        var benchmark = EmailBenchmark(directory: try Corpus.directory.path)
        benchmark.seconds = 1
        benchmark.clients = 1
        let lines = Mutex<[String]>([])
        try await benchmark.run(logger: Self.quiet) { line in lines.withLock { $0.append(line) } }
        let reported = lines.withLock { $0 }
        let endpoint = try #require(reported.first { $0.hasPrefix("endpoint:") }, "\(reported)")
        #expect(Self.figure(after: "endpoint:", in: endpoint) ?? 0 > 0, "\(endpoint)")
        let replay = try #require(reported.first { $0.contains("own SQL (") }, "\(reported)")
        #expect(Self.figure(after: "transactions):", in: replay) ?? 0 > 0, "\(replay)")
        // At least BEGIN, the payload's insert and COMMIT.
        let roundTrips = replay.components(separatedBy: " round trips a mail").first?.split(separator: " ").last.flatMap { Double($0) } ?? 0
        #expect(roundTrips >= 3, "\(replay)")
    }

    /// The number printed right after `label`.
    static func figure(after label: String, in line: String) -> Double? {
        guard let range = line.range(of: label) else { return nil }
        return Double(line[range.upperBound...].trimmingCharacters(in: .whitespaces).prefix { $0.isNumber || $0 == "." })
    }

    @Test("own SQL: statements and parameters read back from the server log become a pgbench script")
    func ownSQLScript() throws {
        let log = """
            2026-12-03 06:23:05.900 UTC [77] LOG:  execute <unnamed>: SELECT 1
            2026-12-03 06:23:05.911 UTC [41] LOG:  execute <unnamed>: BEGIN
            2026-12-03 06:23:05.911 UTC [41] LOG:  execute <unnamed>: INSERT INTO inbound_payloads (channel, body)
            	VALUES ($1, $2)
            	RETURNING id
            2026-12-03 06:23:05.911 UTC [41] DETAIL:  parameters: $1 = 'email', $2 = '\\x4142'
            2026-12-03 06:23:05.912 UTC [42] LOG:  execute <unnamed>: BEGIN
            2026-12-03 06:23:05.912 UTC [41] LOG:  execute <unnamed>: SELECT pg_advisory_xact_lock(hashtextextended($1, 0))
            2026-12-03 06:23:05.912 UTC [41] DETAIL:  parameters: $1 = 'email-message:bench-0-7@bench'
            2026-12-03 06:23:05.912 UTC [42] LOG:  execute <unnamed>: UPDATE agents SET display_name = 'x'
            2026-12-03 06:23:05.913 UTC [41] LOG:  execute <unnamed>: UPDATE inbound_payloads SET parse_error = $1, response_body = $2 WHERE id = $3
            2026-12-03 06:23:05.913 UTC [41] DETAIL:  parameters: $1 = 'it''s
            	fine', $2 = NULL, $3 = '7c2d1c84-54a4-4c67-9a9e-0b2f5c0c1f00'
            2026-12-03 06:23:05.914 UTC [42] LOG:  execute <unnamed>: COMMIT
            2026-12-03 06:23:05.914 UTC [41] LOG:  execute <unnamed>: COMMIT
            """
        let transactions = OwnSQLReplay.transactions(inLog: log, firstStatement: "INSERT INTO inbound_payloads")
        // The other process's transaction starts with something else.
        try #require(transactions.count == 1)
        let statements = transactions[0].statements
        #expect(statements.map { $0.parameters.count } == [2, 1, 3])
        #expect(statements[0].sql == "INSERT INTO inbound_payloads (channel, body)\nVALUES ($1, $2)\nRETURNING id")
        #expect(statements[2].parameters == ["it's\nfine", nil, "7c2d1c84-54a4-4c67-9a9e-0b2f5c0c1f00"])

        let script = OwnSQLReplay.script(
            for: transactions[0], generated: ["7c2d1c84-54a4-4c67-9a9e-0b2f5c0c1f00": 0], uniqueTokens: OwnSQLReplay.benchmarkTokens)
        #expect(script == """
            \\set unique random(1, 9000000000000000)
            BEGIN;
            INSERT INTO inbound_payloads (channel, body)
            VALUES ('email', '\\x4142')
            RETURNING id \\gset s0_
            SELECT pg_advisory_xact_lock(hashtextextended((U&'email-message\\003Abench-0-7@bench.' || CAST(:unique AS text) || ''), 0));
            UPDATE inbound_payloads SET parse_error = 'it''s
            fine', response_body = NULL WHERE id = CAST(:s0_id AS uuid);
            COMMIT;

            """)
    }

    @Test("bench outbound delivers from the outbox and with the bare client, and reports the ratio")
    func outbound() async throws {
        var benchmark = OutboundBenchmark()
        benchmark.replies = 20
        benchmark.workerCounts = [1]
        let lines = Mutex<[String]>([])
        try await benchmark.run(logger: Self.quiet) { line in lines.withLock { $0.append(line) } }
        let reported = lines.withLock { $0 }
        let row = try #require(reported.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("1 ") }, "\(reported)")
        let numbers = row.split(separator: " ").compactMap { Double($0) }
        // workers, connections, outbox, bare over as many connections, ratio, bare over one, ratio.
        #expect(numbers.count == 7 && numbers[2] > 0 && numbers[3] > 0 && numbers[5] > 0, "\(row)")
    }

    @Test("bench events follows the feed three ways under ingest and delivers webhooks, next to bare clients")
    func events() async throws {
        var benchmark = EventsBenchmark()
        benchmark.seconds = 1
        benchmark.clients = 1
        benchmark.endpointCounts = [2]
        let figures = try await benchmark.run(logger: Self.quiet) { _ in }
        #expect(figures.events > 0)
        for (name, lag) in figures.lag {
            #expect(lag.count == figures.events, "\(name) had \(lag.count) of \(figures.events) events")
        }
        #expect(figures.webhooks.count == 1 && figures.webhooks[0].service > 0 && figures.webhooks[0].bare > 0)
    }

    @Test("bench claim-next claims through the service and through pgbench")
    func claimNext() async throws {
        var benchmark = ClaimNextBenchmark()
        benchmark.agentCounts = [2]
        benchmark.seconds = 1
        benchmark.tickets = 2_000
        let rows = try await benchmark.run(logger: Self.quiet) { _ in }
        #expect(rows.count == 1)
        #expect(rows[0].service > 0 && rows[0].pgbench > 0)
    }

    @Test("dev seed: a seed that at least doubles the tickets rebuilds the same indexes once the rows are in; a smaller one keeps them")
    func seed() async throws {
        try await TestApp.run(checksEventPayloads: false) { app in
            let indexes: PostgresQuery = """
                SELECT c.oid::text || ' ' || pg_get_indexdef(i.indexrelid) || ' ' || i.indisvalid::text
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = ANY(ARRAY['customers', 'tickets', 'messages', 'ticket_responses', 'ticket_status_periods']::regclass[])
                ORDER BY c.relname
                """
            // Each index's definition and validity, without the oid that a rebuild changes.
            func definitions(_ rows: [String]) -> [String] { rows.map { String($0.drop { $0 != " " }) } }
            let migrated = try await app.strings(indexes)

            var seeder = ReportSeeder(tickets: 300)
            seeder.batch = 120
            let first = try await seeder.run(app.database, logger: Self.quiet) { _ in }
            let rebuilt = try await app.strings(indexes)
            #expect(definitions(rebuilt) == definitions(migrated))
            #expect(rebuilt.allSatisfy { $0.hasSuffix(" true") })
            // The secondary indexes were built anew (new oids); the constraints' were kept.
            func index(_ name: String, in rows: [String]) -> String? { rows.first { $0.contains(" INDEX \(name) ON ") } }
            #expect(index("messages_ticket_timeline", in: rebuilt) != nil)
            #expect(index("messages_ticket_timeline", in: rebuilt) != index("messages_ticket_timeline", in: migrated))
            #expect(index("tickets_pkey", in: rebuilt) != nil)
            #expect(index("tickets_pkey", in: rebuilt) == index("tickets_pkey", in: migrated))
            #expect(try await app.count("SELECT count(*) FROM tickets") == 300)
            #expect(try await app.count("SELECT count(*) FROM messages") == first.messages)
            // A year that has happened: nothing written, answered, entered or left in the future.
            #expect(try await app.count("""
                SELECT (SELECT count(*) FROM tickets WHERE created_at > now() OR solved_at > now() OR updated_at > now())
                     + (SELECT count(*) FROM messages WHERE created_at > now())
                     + (SELECT count(*) FROM ticket_responses WHERE responded_at > now())
                     + (SELECT count(*) FROM ticket_status_periods WHERE entered_at > now() OR left_at > now())
                """) == 0)
            // As the service's own writes have them (the reports check found the seed did not): an
            // auto-reply starts no wait, a ticket's status is the last of its history, and a new
            // ticket waits since its first message.
            #expect(try await app.count("""
                SELECT count(*) FROM ticket_responses r JOIN messages m ON m.ticket_id = r.ticket_id AND m.created_at = r.waited_since
                WHERE m.classification = 'auto_reply'
                """) == 0)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE classification = 'auto_reply'") > 0)
            #expect(try await app.count("""
                SELECT count(*) FROM tickets t
                WHERE t.status IS DISTINCT FROM (SELECT s.status FROM ticket_status_periods s WHERE s.ticket_id = t.id AND s.left_at IS NULL)
                """) == 0)
            #expect(try await app.count("""
                SELECT count(*) FROM tickets t
                WHERE t.status = 'new' AND t.awaiting_reply_since <> (SELECT min(m.created_at) FROM messages m WHERE m.ticket_id = t.id)
                """) == 0)

            let second = try await ReportSeeder(tickets: 100).run(app.database, logger: Self.quiet) { _ in }
            #expect(try await app.strings(indexes) == rebuilt)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 400)
            #expect(try await app.count("SELECT count(*) FROM messages") == first.messages + second.messages)
        }
    }
}
