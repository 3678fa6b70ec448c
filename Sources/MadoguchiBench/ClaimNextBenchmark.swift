import Foundation
import Logging
import Madoguchi
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// `madoguchi bench claim-next`: how fast agents can pull work through the whole service (HTTP, key
/// check, the claim statement) compared with pgbench running that same claim statement straight
/// against the same database on the same machine. The ratio, not the absolute number, is the result:
/// it holds on a noisy or slower machine.
public struct ClaimNextBenchmark: Sendable {
    public var agentCounts: [Int] = [1, 8, 32]
    public var seconds: Int = 5
    public var tickets: Int = 100_000
    /// Tickets held by live claims while agents pull: the most urgent ones, so that a claim that has to
    /// step past live claims pays for every one of them (a Monday morning, with everyone working).
    public var liveClaims: Int = 0

    public init() {}

    public struct Row: Sendable {
        public var agents: Int
        public var service: Double
        public var pgbench: Double
        /// The plain SKIP LOCKED claim every queue on PostgreSQL starts from, on the same tickets.
        public var anchor: Double
        public var ratio: Double { service / pgbench }
        public var ownSQLToAnchor: Double { pgbench / anchor }
    }

    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws -> [Row] {
        let maxAgents = agentCounts.max() ?? 1
        return try await BenchmarkSupport.withCluster(logger: logger, maxConnections: 200) { cluster in
            try await BenchmarkSupport.withService(on: cluster, logger: logger, configure: { $0.databasePoolSize = max(8, min(maxAgents, 40)) }) { port, database in
                try await measure(database: database, cluster: cluster, port: port, logger: logger, report: report)
            }
        }
    }

    private func measure(
        database: Database, cluster: EmbeddedPostgres, port: Int, logger: Logger, report: @Sendable (String) -> Void
    ) async throws -> [Row] {
        let maxAgents = agentCounts.max() ?? 1

        // Agents with predictable ids, so that pgbench can name one from a random number.
        let keys: [String] = try await database.withConnection { connection in
            try await connection.query("""
                INSERT INTO agents (id, display_name)
                SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'bench agent ' || n
                FROM generate_series(1, \(maxAgents)) AS n
                """, logger: logger)
            var keys: [String] = []
            for number in 1...maxAgents {
                let agentID = UUID(uuidString: "00000000-0000-4000-8000-" + String(format: "%012d", number))!
                keys.append(try await APIKeyStore(logger: logger).create(name: "bench \(number)", role: .agent, agentID: agentID, on: connection).1.text)
            }
            // One customer per ten tickets, as in a shop: every claim's event names its customer, and a
            // single customer behind every ticket would make all agents queue on that one row's lock.
            try await connection.query("""
                INSERT INTO customers (id, display_name)
                SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'bench customer ' || n
                FROM generate_series(0, \(max(tickets / 10, 1) - 1)) AS n
                """, logger: logger)
            try await connection.query("""
                INSERT INTO tickets (customer_id, channel, subject, priority, created_at)
                SELECT ('00000000-0000-4000-8000-' || lpad((n % \(max(tickets / 10, 1)))::text, 12, '0'))::uuid, 'email', 'bench ' || n,
                       (ARRAY['low','normal','high','urgent'])[1 + n % 4], now() - make_interval(secs => n)
                FROM generate_series(1, \(tickets)) AS n
                """, logger: logger)
            return keys
        }
        // The seed's tickets arrive all at once, and the report rollups (ReportRollupWorker) fold
        // them into hourly counts: hundreds of milliseconds of database time per fold, for several
        // folds. A running service did that long ago; folded now, it no longer lands in whichever
        // measurement comes first (it took a third of the database during the first service run).
        // The service's own worker may hold the changes (SKIP LOCKED) while folding them: wait until
        // none is left, folding too.
        try await database.withConnection { connection in
            var left = true
            let deadline = ContinuousClock.now + .seconds(300)
            while left && ContinuousClock.now < deadline {
                for function in ["compact_report_arrivals", "compact_report_backlog"] {
                    try await connection.perform(PostgresQuery(unsafeSQL: "SELECT \(function)(100000)"), logger: logger)
                }
                let rows = try await connection.query("""
                    SELECT EXISTS (SELECT 1 FROM report_arrival_changes) OR EXISTS (SELECT 1 FROM report_backlog_changes)
                    """, logger: logger)
                for try await found in rows.decode(Bool.self) { left = found }
                if left { try await Task.sleep(for: .milliseconds(200)) }
            }
        }
        report("seeded \(tickets) tickets and \(maxAgents) agents; \(liveClaims) live claims on the most urgent; \(seconds) s per measurement")
        report("agents  service claims/s  pgbench claims/s  service/pgbench  anchor claims/s  own SQL/anchor")

        var rows: [Row] = []
        for agents in agentCounts {
            try await reset(database, logger: logger)
            try await BenchmarkSupport.forgetStatements(database, logger: logger)
            let service = try await measureService(port: port, keys: Array(keys.prefix(agents)))
            try await BenchmarkSupport.reportStatements(database, logger: logger, report: report)
            try await reset(database, logger: logger)
            let pgbench = try await measurePgbench(cluster: cluster, agents: agents)
            try await reset(database, logger: logger)
            let anchor = try await measureAnchor(cluster: cluster, agents: agents)
            let row = Row(agents: agents, service: service, pgbench: pgbench, anchor: anchor)
            rows.append(row)
            report(String(format: "%6d  %16.0f  %16.0f  %15.2f  %15.0f  %14.2f", agents, service, pgbench, row.ratio, anchor, row.ownSQLToAnchor))
        }
        return rows
    }

    /// Every ticket claimable again but the `liveClaims` most urgent, held for a day by an agent that
    /// does not pull, and fresh statistics, so each run starts from the same state.
    private func reset(_ database: Database, logger: Logger) async throws {
        try await database.withConnection { connection in
            try await connection.query(
                "UPDATE tickets SET claim_agent_id = NULL, claim_expires_at = NULL, assignee_id = NULL WHERE claim_agent_id IS NOT NULL",
                logger: logger)
            try await connection.query("""
                INSERT INTO agents (id, display_name) VALUES ('00000000-0000-4000-8000-999999999999', 'bench holder') ON CONFLICT DO NOTHING
                """, logger: logger)
            try await connection.query("""
                UPDATE tickets SET claim_agent_id = '00000000-0000-4000-8000-999999999999', claim_expires_at = now() + interval '1 day'
                WHERE id IN (SELECT id FROM tickets WHERE status IN ('new', 'open')
                             ORDER BY priority_rank DESC, response_due_at ASC NULLS LAST, created_at ASC LIMIT \(liveClaims))
                """, logger: logger)
            try await connection.query("VACUUM ANALYZE tickets", logger: logger)
        }
    }

    /// Each agent on its own thread and keep-alive connection, pulling until the time is up.
    private func measureService(port: Int, keys: [String]) async throws -> Double {
        let result = try await BenchmarkSupport.drive(port: port, clients: keys.count, seconds: seconds) { agent, _ in
            .init(path: "/v1/queue/next", headers: ["Authorization": "Bearer \(keys[agent])"], body: [])
        }
        return Double(result.requests) / result.elapsed
    }

    /// pgbench with `agents` clients, each transaction the service's own claim statement for a random agent.
    private func measurePgbench(cluster: EmbeddedPostgres, agents: Int) async throws -> Double {
        let agentExpression = "('00000000-0000-4000-8000-' || lpad(:agent::text, 12, '0'))::uuid"
        let statement = ClaimNextStatement.sql
            .replacingOccurrences(of: "$1", with: agentExpression)
            .replacingOccurrences(of: "$2", with: "900")
            .replacingOccurrences(of: "$3", with: "NULL::uuid")
        // pgbench reads one statement per line unless it ends in a semicolon; keep it on one line.
        let script = "\\set agent random(1, \(agents))\n" + statement.split(separator: "\n").joined(separator: " ") + ";\n"
        return try await BenchmarkSupport.pgbenchTPS(script: script, named: "claim-next", clients: agents, seconds: seconds, on: cluster)
    }

    /// The anchor: one UPDATE of the most urgent unclaimed ticket found with SKIP LOCKED, in the same
    /// order and on the same index as the service, and nothing else (no queues, no assignee, no
    /// lapsed claims, no event): what a claim costs PostgreSQL at the least.
    private func measureAnchor(cluster: EmbeddedPostgres, agents: Int) async throws -> Double {
        let script = """
            \\set agent random(1, \(agents))
            UPDATE tickets SET claim_agent_id = ('00000000-0000-4000-8000-' || lpad(:agent::text, 12, '0'))::uuid, \
            claim_expires_at = now() + interval '15 minutes' WHERE id = (SELECT id FROM tickets \
            WHERE status IN ('new', 'open') AND claim_agent_id IS NULL AND assignee_id IS NULL \
            ORDER BY priority_rank DESC, response_due_at ASC NULLS LAST, created_at ASC LIMIT 1 FOR UPDATE SKIP LOCKED);

            """
        return try await BenchmarkSupport.pgbenchTPS(script: script, named: "claim-anchor", clients: agents, seconds: seconds, on: cluster)
    }
}
