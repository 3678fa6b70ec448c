import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle

/// Delivers the outbox. Runs inside `madoguchi serve` (unless `MADOGUCHI_OUTBOX_WORKER=off`) and as
/// `madoguchi worker`; any number of workers in any number of processes share one outbox.
///
/// Exactly once toward the customer rests on three things:
/// - A row is claimed with `FOR UPDATE SKIP LOCKED` and a lease; only the holder may change it, and a
///   crashed holder's lease expires so another worker continues.
/// - Just before the step that hands the message over for good (SMTP's final dot, an SMS API call),
///   the worker commits `handover_at`. A row found with an expired lease and no `handover_at` was
///   never handed over and is simply tried again; one with `handover_at` may have been, and is held
///   for a person (`reply.held`) instead of being sent a second time. The same holds when the relay
///   or provider gives no answer after the handover (FreeScout re-sent one reply 25 times that way).
/// - The relay's answer is committed at once, with the per-recipient results: a retry goes only to
///   the recipients still pending.
public struct OutboxWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    let settings: DeliverySettings
    let publicURL: String?
    /// Names this worker's claims: host, process and a random part.
    let name: String

    public init(database: Database, migrator: Migrator, settings: DeliverySettings, publicURL: String?, logger: Logger) {
        self.database = database
        self.migrator = migrator
        self.settings = settings
        self.publicURL = publicURL
        self.logger = logger
        name = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8).lowercased())"
    }

    public func run() async throws {
        let channels = settings.deliverableChannels
        guard !channels.isEmpty else {
            logger.notice("outbox: no delivery is configured; replies wait in the outbox", metadata: ["settings": "\(settings.summary)"])
            try? await gracefulShutdown()
            return
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let senders = try Senders(worker: self, group: group)
        // Not before the schema this binary needs is in place (the server migrates as it starts).
        while !Task.isShuttingDownGracefully, !(await schemaIsCurrent()) {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
        logger.info("outbox worker started", metadata: ["worker": "\(name)", "channels": "\(channels.map(\.rawValue))"])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let worked: Bool
            do {
                worked = try await round(channels: channels, senders: senders)
            } catch {
                // The database may be restarting; the next round tries again.
                logger.warning("outbox round failed", metadata: ["error": "\(String(reflecting: error))"])
                worked = false
            }
            if !worked {
                // Graceful shutdown ends the wait at once; a delivery in progress always finishes first.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: settings.pollInterval) }
            }
        }
        await senders.close()
        logger.info("outbox worker stopped", metadata: ["worker": "\(name)"])
    }

    private func schemaIsCurrent() async -> Bool {
        (try? await database.withConnection { try await migrator.status($0, logger: logger) }.complete) ?? false
    }

    /// One round: hold abandoned handovers, claim what is due, deliver it all. True if there was work.
    func round(channels: [Channel], senders: Senders) async throws -> Bool {
        let store = OutboxStore(logger: logger)
        let recorder = DeliveryRecorder(database: database, logger: logger, settings: settings, worker: name)
        try await holdAbandonedHandovers()
        let items = try await database.withTransaction { connection in
            try await store.claim(worker: name, channels: channels, lease: settings.lease, limit: settings.concurrency, on: connection)
        }
        guard !items.isEmpty else { return false }
        await withTaskGroup(of: Void.self) { group in
            for item in items {
                group.addTask {
                    let attempt = await senders.deliver(item)
                    do {
                        try await recorder.record(attempt, for: item)
                    } catch {
                        // The lease expires and the row is taken up again (or held, past its handover).
                        logger.error("recording a delivery failed", metadata: ["outbox_id": "\(item.id)", "error": "\(String(reflecting: error))"])
                    }
                }
            }
        }
        return true
    }

    private func holdAbandonedHandovers() async throws {
        try await database.withTransaction { connection in
            for (outboxID, replyID) in try await OutboxStore(logger: logger).holdAbandonedHandovers(on: connection) {
                logger.warning("delivery held: its worker stopped during the handover", metadata: ["outbox_id": "\(outboxID)"])
                let rows = try await connection.query("""
                    SELECT r.ticket_id, t.customer_id, r.message_id FROM replies r JOIN tickets t ON t.id = r.ticket_id WHERE r.id = \(replyID)
                    """, logger: logger)
                for try await (ticketID, customerID, messageID) in rows.decode((UUID, UUID, UUID?).self) {
                    try await EventStore(logger: logger).record(
                        .replyHeld, ticketID: ticketID, customerID: customerID, messageID: messageID, actor: nil,
                        data: ["reply_id": replyID.lowercased, "reason": "the worker stopped while handing the message over"], on: connection)
                }
            }
        }
    }

    /// The handover mark, committed; throws when the row is no longer this worker's.
    func handover(_ item: OutboxItem) async throws {
        let ours = try await database.withConnection { connection in
            try await OutboxStore(logger: logger).markHandover(of: item.id, worker: name, lease: settings.lease, on: connection)
        }
        guard ours else { throw EmailDelivery.LeaseLost() }
    }

    /// The channels' senders, built once per worker (connection pools, TLS contexts).
    struct Senders: Sendable {
        let worker: OutboxWorker
        let email: EmailDelivery?
        let providers: ProviderDelivery?

        init(worker: OutboxWorker, group: any EventLoopGroup) throws {
            self.worker = worker
            let settings = worker.settings
            if let relay = settings.smtp, let from = settings.mailFrom {
                email = EmailDelivery(
                    database: worker.database, logger: worker.logger, settings: settings, from: from,
                    pool: try SMTPPool(relay: relay, timeouts: settings.smtpTimeouts, group: group),
                    dkim: try settings.dkim.map { try DKIMSigner(domain: from.domain, key: $0) })
            } else {
                email = nil
            }
            if settings.twilio != nil || settings.vonage != nil || settings.line != nil {
                providers = ProviderDelivery(database: worker.database, logger: worker.logger, settings: settings,
                                             http: try ProviderHTTPClient(group: group, timeout: .milliseconds(Int64(settings.providerTimeout.seconds * 1000))),
                                             publicURL: worker.publicURL)
            } else {
                providers = nil
            }
        }

        func deliver(_ item: OutboxItem) async -> DeliveryAttempt {
            let worker = self.worker
            let handover: @Sendable () async throws -> Void = { try await worker.handover(item) }
            switch item.channel {
            case .email, .webform:
                guard let email else { return .deferred(item, "mail delivery is not configured") }
                return await email.deliver(item, worker: worker.name, handover: handover)
            case .sms, .chat:
                guard let providers else { return .deferred(item, "\(item.channel.rawValue) delivery is not configured") }
                return await providers.deliver(item, handover: handover)
            }
        }

        func close() async {
            await email?.pool.closeAll()
        }
    }
}
