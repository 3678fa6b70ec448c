import Foundation
import Logging
import Madoguchi
import PostgresNIO

/// `madoguchi dev seed`: a support desk's year, generated inside PostgreSQL in batches so that
/// reports can be measured at scale. Per ticket: a customer of its own (no customer writes twice), a channel,
/// Japanese or English text, a category and tags, one to nine exchanges of a customer message and an
/// agent's reply (a note now and then, a bounce now and then), and the facts the reports read (each
/// stretch in a status, each response with its wait), all with plausible timings over the last year.
///
/// Triggers are switched off for the seed's transaction (`session_replication_role = replica`, which
/// needs a superuser, as the embedded cluster's is): the seeder writes what they would have derived itself,
/// consistently and in bulk. Business seconds of seeded responses and resolutions are an
/// approximation (60 % of the wall-clock time); due times are an hour of wall-clock for first and next responses, and
/// waits are spread evenly over 10 minutes to 5.7 hours, so about 85 % of responses are breaches.
///
/// The data is even where a desk's is skewed: arrivals spread over the year with no weekday or hour
/// shape, agents equally busy, each channel with one priority, bodies of two short sentences. Reports
/// over it are a fair measure of the SQL's cost per row, not of a real desk's distribution.
public struct ReportSeeder: Sendable {
    public var tickets: Int
    public var batch = 20_000

    public init(tickets: Int) {
        self.tickets = tickets
    }

    public struct Outcome: Sendable {
        public var tickets: Int
        public var messages: Int
        public var seconds: Double
        public var messagesPerSecond: Double { Double(messages) / seconds }
    }

    /// Computes every closed period's response times and SLA outcomes now, as the rollup worker
    /// would in the background after a seed (it starts from scratch: the seed ran with triggers off);
    /// returns the seconds it took.
    public static func computeClosedPeriods(_ database: Database, logger: Logger) async throws -> Double {
        let start = Date()
        try await database.withConnection { try await $0.perform("SELECT fold_report_response_periods()", logger: logger) }
        return Date().timeIntervalSince(start)
    }

    public func run(_ database: Database, logger: Logger, progress: (String) -> Void) async throws -> Outcome {
        let start = Date()
        var messages = 0
        // One transaction for the whole seed: a seed cut short leaves nothing behind, not even the
        // indexes set aside below. Run again whole should PostgreSQL pick it as a deadlock victim.
        try await database.withTransaction { connection in
            messages = 0
            // The lock the rollup worker's fold of response periods takes first (migration 0038), and
            // the rebuild at the end takes too: taken now, a running service's fold waits for the
            // seed. Taken last, it deadlocked with a fold waiting on the tables the seed holds, and
            // PostgreSQL aborted the seed.
            try await connection.perform("SELECT pg_advisory_xact_lock(7382660038)", logger: logger)
            try await connection.query("SET LOCAL session_replication_role = replica", logger: logger)
            try await connection.query("""
                INSERT INTO agents (id, display_name)
                SELECT ('00000000-0000-4000-8000-5eed' || lpad(n::text, 8, '0'))::uuid, 'サポート担当 ' || n
                FROM generate_series(1, 20) AS n
                ON CONFLICT (id) DO NOTHING
                """, logger: logger)
            let setAside = try await setAsideIndexes(on: connection, logger: logger)
            var done = 0
            while done < tickets {
                let count = min(batch, tickets - done)
                try await seedBatch(first: done, count: count, on: connection, logger: logger)
                let rows = try await connection.query("""
                    SELECT count(*) + count(answered_at) + count(*) FILTER (WHERE answered_at IS NOT NULL AND exchange % 4 = 2) FROM seed_messages
                    """, logger: logger)
                for try await added in rows.decode(Int.self) { messages += added }
                done += count
                let elapsed = Date().timeIntervalSince(start)
                progress(String(format: "%9d tickets  %10d messages  %7.1f s  %8.0f messages/s", done, messages, elapsed, Double(messages) / elapsed))
            }
            if !setAside.isEmpty {
                let rebuilding = Date()
                try await connection.query("SET LOCAL maintenance_work_mem = '256MB'", logger: logger)
                for definition in setAside {
                    try await connection.query(PostgresQuery(unsafeSQL: definition), logger: logger)
                }
                progress(String(format: "%d indexes rebuilt in %.1f s", setAside.count, Date().timeIntervalSince(rebuilding)))
            }
            try await connection.query("SET LOCAL session_replication_role = origin", logger: logger)
            // The triggers that keep the report rollups were off too: count them from what was written.
            try await connection.perform("SELECT rebuild_report_arrivals(), rebuild_report_backlog(), rebuild_report_response_periods()", logger: logger)
        }
        // As autovacuum would soon: statistics, and the visibility map, without which every
        // index-only read of the new rows visits the table too. A running service's tables are
        // vacuumed; the reports are measured in that state.
        try await database.withConnection { try await $0.perform("VACUUM (ANALYZE)", logger: logger) }
        return Outcome(tickets: tickets, messages: messages, seconds: Date().timeIntervalSince(start))
    }

    /// When this seed at least doubles the tickets, drops the secondary indexes of the tables it
    /// fills and returns their definitions, to be built again once the rows are in; otherwise drops
    /// nothing. Why: rows arrive in random key order (uuids, tickets scattered over a year), so past
    /// the buffer cache every row's entry in each index is a random page read and write. At
    /// 1,000,000 tickets that made the seed slow down as it went (19,553 messages/s overall against
    /// 34,000 in its first batches); an index built in one pass sorts instead. Indexes that back a
    /// constraint (primary keys, unique constraints) stay, as do those of tables the seed does not
    /// fill. The drop holds those tables' locks until the seed commits.
    private func setAsideIndexes(on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let existing = try await connection.query("SELECT count(*) FROM tickets", logger: logger)
        var ticketsBefore = 0
        for try await count in existing.decode(Int.self) { ticketsBefore = count }
        guard tickets >= ticketsBefore else { return [] }
        let rows = try await connection.query("""
            SELECT format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.indrelid = ANY(ARRAY['customers', 'tickets', 'messages', 'ticket_responses', 'ticket_status_periods']::regclass[])
              AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
            ORDER BY c.relname
            """, logger: logger)
        var names: [String] = []
        var definitions: [String] = []
        for try await (name, definition) in rows.decode((String, String).self) {
            names.append(name)
            definitions.append(definition)
        }
        if !names.isEmpty {
            try await connection.query(PostgresQuery(unsafeSQL: "DROP INDEX " + names.joined(separator: ", ")), logger: logger)
        }
        return definitions
    }

    /// One transaction's worth: tickets numbered from `first`, their customers, messages and facts.
    private func seedBatch(first: Int, count: Int, on connection: PostgresConnection, logger: Logger) async throws {
        // The shape of each ticket, decided once: the later statements all read it.
        try await connection.query("DROP TABLE IF EXISTS seed_tickets, seed_messages", logger: logger)
        try await connection.query("""
            CREATE TEMP TABLE seed_tickets ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, gen_random_uuid() AS customer_id, n,
                   (ARRAY['email', 'email', 'email', 'webform', 'sms', 'chat'])[1 + n % 6] AS channel,
                   -- Early enough that its last exchange (and a solve an hour later) is past, not future.
                   now() - make_interval(secs => (n * 7919) % (365 * 86400)) - shape.step * (2 * shape.exchanges) - interval '1 hour' AS opened_at,
                   shape.exchanges, shape.step,
                   CASE WHEN n % 10 < 7 THEN 'solved' WHEN n % 10 = 7 THEN 'open' WHEN n % 10 = 8 THEN 'pending' ELSE 'new' END AS final_status,
                   (ARRAY['low', 'normal', 'normal', 'normal', 'high', 'urgent'])[1 + n % 6] AS priority,
                   (ARRAY['返品', '配送', '支払い', '商品について', 'アカウント', NULL])[1 + (n / 7) % 6] AS category,
                   CASE n % 5 WHEN 0 THEN ARRAY['至急'] WHEN 1 THEN ARRAY['VIP', '再送'] ELSE '{}'::text[] END AS tags,
                   ('00000000-0000-4000-8000-5eed' || lpad((1 + n % 20)::text, 8, '0'))::uuid AS agent_id,
                   n % 3 = 0 AS english
            FROM generate_series(\(first + 1), \(first + count)) AS n,
                 LATERAL (SELECT 1 + (n * 31) % 9 AS exchanges, make_interval(secs => 600 + (n * 104729) % 20000) AS step) AS shape
            """, logger: logger)
        try await connection.query("""
            INSERT INTO customers (id, display_name, created_at)
            SELECT customer_id, CASE WHEN english THEN 'Customer ' || n ELSE '顧客 ' || n END, opened_at FROM seed_tickets
            """, logger: logger)
        // A ticket's exchanges: the customer writes at opened + (2e - 2) * step, we answer at
        // opened + (2e - 1) * step; tickets still new have no answer, open and pending ones none to
        // their last message. The third message of a long thread is the customer's auto-reply
        // (`automatic`): it starts no wait and gets no answer, as the service's own writes have it.
        try await connection.query("""
            CREATE TEMP TABLE seed_messages ON COMMIT DROP AS
            SELECT s.id AS ticket_id, s.customer_id, s.channel, s.agent_id, s.english, e AS exchange, s.exchanges, s.final_status,
                   s.opened_at + s.step * (2 * e - 2) AS asked_at,
                   CASE WHEN s.final_status = 'new' OR (s.final_status = 'open' AND e = s.exchanges) OR (e = 3 AND s.exchanges > 5) THEN NULL
                        ELSE s.opened_at + s.step * (2 * e - 1) END AS answered_at,
                   s.step, e = 3 AND s.exchanges > 5 AS automatic
            FROM seed_tickets s CROSS JOIN LATERAL generate_series(1, s.exchanges) AS e
            """, logger: logger)
        try await connection.query("""
            INSERT INTO tickets (id, customer_id, subject, status, priority, channel, category, tags, assignee_id,
                                 first_responded_at, last_responded_at, last_customer_message_at, awaiting_reply_since,
                                 solved_at, created_at, updated_at)
            SELECT s.id, s.customer_id,
                   CASE WHEN s.english THEN 'Question about order #' || s.n ELSE '注文番号' || s.n || 'について' END,
                   s.final_status, s.priority, s.channel::channel, s.category, s.tags,
                   CASE WHEN s.final_status = 'new' THEN NULL ELSE s.agent_id END,
                   m.first_answer, m.last_answer, m.last_asked,
                   -- Waiting since the first message nobody answered: the first of all on a new ticket.
                   CASE WHEN m.last_answer IS NULL THEN m.first_asked WHEN m.last_asked > m.last_answer THEN m.last_asked END,
                   CASE WHEN s.final_status = 'solved' THEN m.last_answer + interval '1 hour' END,
                   s.opened_at, coalesce(m.last_answer, m.last_asked)
            FROM seed_tickets s
            JOIN (SELECT ticket_id, min(answered_at) AS first_answer, max(answered_at) AS last_answer,
                         max(asked_at) FILTER (WHERE NOT automatic) AS last_asked, min(asked_at) AS first_asked
                  FROM seed_messages GROUP BY ticket_id) m ON m.ticket_id = s.id
            """, logger: logger)
        try await connection.query("""
            INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, author_agent_id, subject, body_text, created_at)
            SELECT ticket_id, 'inbound', channel::channel, CASE WHEN automatic THEN 'auto_reply' ELSE 'customer' END,
                   customer_id, NULL, NULL,
                   CASE WHEN english THEN 'Hello, my order has not arrived yet. Could you check the delivery status? (' || exchange || ')'
                        ELSE 'お世話になっております。注文した商品がまだ届きません。配送状況を確認していただけますか。(' || exchange || ')' END,
                   asked_at
            FROM seed_messages
            UNION ALL
            SELECT ticket_id, 'outbound', channel::channel, 'customer', NULL, agent_id, NULL,
                   CASE WHEN english THEN 'Thank you for contacting us. We have checked your order and it ships today.'
                        ELSE 'お問い合わせありがとうございます。ご注文の商品は本日発送いたしました。' END,
                   answered_at
            FROM seed_messages WHERE answered_at IS NOT NULL
            UNION ALL
            SELECT ticket_id, 'internal', channel::channel, 'customer', NULL, agent_id, NULL, '倉庫に在庫を確認中', answered_at - interval '1 minute'
            FROM seed_messages WHERE answered_at IS NOT NULL AND exchange % 4 = 2
            """, logger: logger)
        try await connection.query("""
            INSERT INTO ticket_responses (ticket_id, agent_id, is_first, waited_since, responded_at, due_at, wall_seconds, business_seconds)
            SELECT ticket_id, agent_id, exchange = 1, asked_at, answered_at, asked_at + interval '1 hour',
                   extract(epoch FROM step), extract(epoch FROM step) * 0.6
            FROM seed_messages WHERE answered_at IS NOT NULL
            """, logger: logger)
        try await connection.query("""
            INSERT INTO ticket_status_periods (ticket_id, status, entered_at, left_at, business_seconds_since_opened)
            -- An open ticket nobody answered yet was opened by hand: open from the start, as its status says.
            SELECT id, CASE WHEN status = 'open' AND first_responded_at IS NULL THEN 'open' ELSE 'new' END, created_at, first_responded_at, NULL::float8
            FROM tickets WHERE id IN (SELECT id FROM seed_tickets)
            UNION ALL
            SELECT id, 'open', first_responded_at, CASE status WHEN 'solved' THEN solved_at WHEN 'pending' THEN last_responded_at END, NULL
            FROM tickets WHERE id IN (SELECT id FROM seed_tickets) AND first_responded_at IS NOT NULL
            UNION ALL
            SELECT id, status, coalesce(solved_at, last_responded_at), NULL,
                   CASE WHEN status = 'solved' THEN (extract(epoch FROM solved_at - created_at) * 0.6)::float8 END
            FROM tickets WHERE id IN (SELECT id FROM seed_tickets) AND status IN ('solved', 'pending')
            """, logger: logger)
    }
}
