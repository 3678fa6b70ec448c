import Foundation
import Logging
import Madoguchi
import MadoguchiMail
import NIOCore
import NIOPosix
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// `madoguchi bench outbound`: replies delivered from the outbox (claim, compose, SMTP, record the
/// answer, every state change committed) to a loopback SMTP sink, by 1 and by 4 workers, next to
/// the same composed messages sent by a bare loop of the service's own SMTP client to the same sink.
/// The bare loop runs twice: over as many connections as the outbox may hold (workers × deliveries
/// per worker), which is the like-for-like comparison and the outbox's cost; and over one connection
/// per worker. Also the process's memory with the whole backlog queued.
public struct OutboundBenchmark: Sendable {
    public var replies: Int = 2_000
    public var workerCounts: [Int] = [1, 4]
    /// Deliveries each worker runs at once (`MADOGUCHI_OUTBOX_CONCURRENCY`), so SMTP connections.
    public var concurrency = DeliverySettings().concurrency

    public init() {}

    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let sink = try await SMTPSinkServer(group: group)
        defer { Task { await sink.close() } }
        let relay = try SMTPRelay(url: "smtp://127.0.0.1:\(sink.port)?starttls=off", heloName: "bench")
        report("\(replies) replies per measurement, delivered to an SMTP sink on loopback; \(concurrency) deliveries at once per worker")
        report("workers  connections  outbox replies/s  bare client msgs/s, same connections  outbox/bare  bare client, 1 connection per worker  outbox/bare")
        report("         (machine CPU per message: every process's busy time, the database's and the sink's too)")
        try await BenchmarkSupport.withCluster(logger: logger) { cluster in
            try await cluster.createDatabase("bench")
            let database = Database(configuration: cluster.clientConfiguration(database: "bench"), logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { await database.client.run() }
                defer { tasks.cancelAll() }
                try await Migrator.bundled().migrate(database, logger: logger)
                let agent = try await seedConversation(database, logger: logger)
                for workers in workerCounts {
                    try await seed(replies, agent: agent, database, logger: logger)
                    let rss = Self.residentMegabytes()
                    let outboxCPU = MachineCPU.now()
                    let outbox = try await measureOutbox(workers: workers, relay: relay, sink: sink, database: database, logger: logger)
                    let outboxCPUms = outboxCPU.millisecondsPer(replies)
                    let messages = try await composedMessages(database, limit: replies, logger: logger)
                    let connections = workers * concurrency
                    let bareCPU = MachineCPU.now()
                    let bare = try await measureBare(connections: connections, messages: messages, relay: relay, sink: sink, group: group)
                    let bareCPUms = bareCPU.millisecondsPer(messages.count)
                    let barePerWorker = try await measureBare(connections: workers, messages: messages, relay: relay, sink: sink, group: group)
                    report(String(format: "%7d  %11d  %16.1f  %36.1f  %11.2f  %36.1f  %11.2f",
                                  workers, connections, outbox, bare, outbox / bare, barePerWorker, outbox / barePerWorker))
                    if let outboxCPUms, let bareCPUms {
                        report(String(format: "         machine CPU per message: outbox %.3f ms, bare client (same connections) %.3f ms, %.1f×",
                                      outboxCPUms, bareCPUms, outboxCPUms / bareCPUms))
                    }
                    report("         RSS with \(replies) queued: \(rss) MiB; after delivering them: \(Self.residentMegabytes()) MiB")
                    try await BenchmarkSupport.reportStatements(database, logger: logger, report: report)
                    try await database.withConnection { try await $0.perform("DELETE FROM outbox", logger: logger) }
                }
            }
        }
    }

    /// One agent, one customer with a mail address: the author and recipient of every reply.
    private func seedConversation(_ database: Database, logger: Logger) async throws -> (agent: UUID, customer: UUID) {
        try await database.withConnection { connection in
            let agent = UUID(), customer = UUID()
            try await connection.query("INSERT INTO agents (id, display_name) VALUES (\(agent), 'bench agent')", logger: logger)
            try await connection.query("INSERT INTO customers (id, display_name) VALUES (\(customer), '山田 花子')", logger: logger)
            try await connection.query("""
                INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(customer), 'email', 'hanako@example.jp')
                """, logger: logger)
            return (agent, customer)
        }
    }

    /// `count` tickets, each with the customer's mail and a sent reply waiting in the outbox, as
    /// ingest and ReplyDesk leave them.
    private func seed(_ count: Int, agent: (agent: UUID, customer: UUID), _ database: Database, logger: Logger) async throws {
        try await database.withConnection { connection in
            try await connection.query("""
                WITH t AS (
                    INSERT INTO tickets (customer_id, subject, channel) SELECT \(agent.customer), 'ご注文の商品について', 'email' FROM generate_series(1, \(count))
                    RETURNING id
                ), i AS (
                    INSERT INTO messages (ticket_id, direction, channel, customer_id, from_address, subject, body_text, email_message_id)
                    SELECT id, 'inbound', 'email', \(agent.customer), 'hanako@example.jp', 'ご注文の商品について', '商品がまだ届きません。',
                           'customer-' || id || '@example.jp'
                    FROM t
                ), m AS (
                    INSERT INTO messages (ticket_id, direction, channel, author_agent_id, to_addresses, subject, body_text, email_message_id)
                    SELECT id, 'outbound', 'email', \(agent.agent), ARRAY['hanako@example.jp'], 'Re: ご注文の商品について [#1]',
                           'お問い合わせありがとうございます。' || chr(10) || 'ご注文の商品は本日発送いたしました。' || chr(10) || '到着まで二、三日お待ちください。',
                           'bench-' || gen_random_uuid() || '@shop.example'
                    FROM t
                    RETURNING id, ticket_id, email_message_id, body_text
                ), r AS (
                    INSERT INTO replies (ticket_id, author_agent_id, channel, recipients, subject, body_text, state, message_id)
                    SELECT ticket_id, \(agent.agent), 'email', ARRAY['hanako@example.jp'], 'Re: ご注文の商品について [#1]', body_text, 'queued', id FROM m
                    RETURNING id, message_id
                )
                INSERT INTO outbox (reply_id, channel, recipients, email_message_id)
                SELECT r.id, 'email', ARRAY['hanako@example.jp'], m.email_message_id FROM r JOIN m ON m.id = r.message_id
                """, logger: logger)
            try await connection.query("VACUUM ANALYZE", logger: logger)
        }
    }

    /// `workers` outbox workers until every row is sent; replies per second.
    private func measureOutbox(workers: Int, relay: SMTPRelay, sink: SMTPSinkServer, database: Database, logger: Logger) async throws -> Double {
        var settings = DeliverySettings()
        settings.smtp = relay
        settings.mailFrom = MailAddress(name: "ショップ サポート", address: "support@shop.example")
        settings.pollInterval = .milliseconds(20)
        settings.concurrency = concurrency
        let services = (0..<workers).map { _ in
            OutboxWorker(database: database, migrator: try! Migrator.bundled(), settings: settings, publicURL: nil, logger: logger) as any Service
        }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: [], logger: logger))
        let before = sink.received
        let start = ContinuousClock.now
        let running = Task { try await group.run() }
        while sink.received - before < replies {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Until the last answer is recorded, not just received.
        while try await database.withConnection({ connection -> Int in
            let rows = try await connection.query("SELECT count(*)::int FROM outbox WHERE state <> 'sent'", logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }) > 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        let elapsed = ContinuousClock.now - start
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return Double(replies) / elapsed.seconds
    }

    /// The very bytes the outbox sent (each row keeps its composed mail).
    private func composedMessages(_ database: Database, limit: Int, logger: Logger) async throws -> [[UInt8]] {
        try await database.withConnection { connection in
            let rows = try await connection.query("SELECT message FROM outbox WHERE message IS NOT NULL LIMIT \(limit)", logger: logger)
            var messages: [[UInt8]] = []
            for try await message in rows.decode(ByteBuffer.self) { messages.append(Array(buffer: message)) }
            return messages
        }
    }

    /// The SMTP client alone, `connections` at once, sending `messages` between them.
    private func measureBare(connections: Int, messages: [[UInt8]], relay: SMTPRelay, sink: SMTPSinkServer, group: any EventLoopGroup) async throws -> Double {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for connection in 0..<connections {
                tasks.addTask {
                    let session = try await SMTPSession.open(relay: relay, tls: nil, timeouts: .init(), group: group)
                    for index in stride(from: connection, to: messages.count, by: connections) {
                        let outcome = try await session.send(
                            messages[index], envelope: .init(from: "support@shop.example", recipients: ["hanako@example.jp"], needsSMTPUTF8: false),
                            pointOfNoReturn: {})
                        guard outcome.finalReply?.code == 250 else { throw BenchmarkError("the sink refused a message") }
                    }
                    await session.close()
                }
            }
            try await tasks.waitForAll()
        }
        return Double(messages.count) / (ContinuousClock.now - start).seconds
    }

    /// This process's resident memory, from /proc.
    static func residentMegabytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
        return kilobytes / 1024
    }
}

extension Duration {
    fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
