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

    /// Writes of one delivery's outcome before it is left to its lease: 0.25, 0.5, 1 … 16 s apart,
    /// about 32 s in all. Long enough for a database that restarts (`systemctl restart madoguchi`
    /// stops and starts the embedded cluster under a worker beside it); five attempts in 3.75 s were
    /// not, and a reply the relay had taken was then held for a person.
    static let recordingAttempts = 8
    let settings: DeliverySettings
    let publicURL: String?
    let shutdownNotice: ShutdownNotice
    /// Names this worker's claims: host, process and a random part.
    let name: String
    /// The handover marks of deliveries in flight, committed together.
    private let handovers: CommitGroup<OutboxStore.HandoverMark, Bool>

    public init(database: Database, migrator: Migrator, settings: DeliverySettings, publicURL: String?, logger: Logger) {
        self.init(database: database, migrator: migrator, settings: settings, publicURL: publicURL, shutdownNotice: ShutdownNotice(), logger: logger)
    }

    /// `shutdownNotice`: the process has begun to stop; claim nothing more (see `ShutdownNotice`).
    init(database: Database, migrator: Migrator, settings: DeliverySettings, publicURL: String?, shutdownNotice: ShutdownNotice, logger: Logger) {
        self.shutdownNotice = shutdownNotice
        self.database = database
        self.migrator = migrator
        self.settings = settings
        self.publicURL = publicURL
        self.logger = logger
        let name = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8).lowercased())"
        self.name = name
        handovers = CommitGroup { marks in
            do {
                let ours = try await database.withConnection { connection in
                    try await OutboxStore(logger: logger).markHandovers(marks, worker: name, on: connection)
                }
                return marks.map { .success(ours.contains($0.claim)) }
            } catch {
                return marks.map { _ in .failure(error) }
            }
        }
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
        await migrator.waitUntilCurrent(database, logger: logger)
        logger.info("outbox worker started", metadata: ["worker": "\(name)", "channels": "\(channels.map(\.rawValue))"])
        await deliverUntilShutdown(channels: channels, senders: senders)
        await senders.close()
        logger.info("outbox worker stopped", metadata: ["worker": "\(name)"])
        await shutdownNotice.waitForTurn()
    }

    private enum Finished: Sendable {
        /// The relay or provider answered (or not): its SMTP connection is free for the next row.
        case sent(DeliveryRecorder.Outcome)
        /// What it came to is committed.
        case recorded
        case tick
    }

    /// Keeps up to `concurrency` deliveries in flight: once half the slots are free they are filled,
    /// rather than waiting for the slowest delivery of a batch. A slot frees when the relay has
    /// answered; writing down the answer goes on beside the next deliveries (up to `concurrency`
    /// answers at a time), since it waits for a commit shared with other answers. Idle, it looks for
    /// work every `pollInterval`. On graceful shutdown it claims nothing more and lets every delivery
    /// in flight finish and be recorded.
    private func deliverUntilShutdown(channels: [Channel], senders: Senders) async {
        let recorder = DeliveryRecorder(database: database, logger: logger, settings: settings, worker: name)
        let outcomes = CommitGroup<DeliveryRecorder.Outcome, Void> { await recorder.record($0) }
        let logger = logger
        var lastHoldCheck = ContinuousClock.now - .seconds(60)
        await withTaskGroup(of: Finished.self) { group in
            var sending = 0
            var recording = 0
            var ticking = false
            func record(_ outcome: DeliveryRecorder.Outcome) {
                recording += 1
                group.addTask {
                    // An answer not written down leaves the row to lapse, and past its handover a row that
                    // lapses is held for a person, though the relay said 250. A passing database error (a
                    // dropped connection, a failover) is waited out a few times first, well within the
                    // handover's lease; writing it again is safe, as settling matches this attempt only.
                    var pause = Duration.milliseconds(250)
                    for attempt in 1...Self.recordingAttempts {
                        do {
                            try await outcomes.submit(outcome)
                            return .recorded
                        } catch {
                            let metadata: Logger.Metadata = ["outbox_id": "\(outcome.item.id)", "error": "\(String(reflecting: error))"]
                            guard attempt < Self.recordingAttempts, !Task.isCancelled else {
                                // The lease expires and the row is taken up again (or held, past its handover).
                                logger.error("recording a delivery failed", metadata: metadata)
                                return .recorded
                            }
                            logger.warning("recording a delivery failed; trying again", metadata: metadata)
                            try? await Task.sleep(for: pause)
                            pause *= 2
                        }
                    }
                    return .recorded
                }
            }
            while !shutdownNotice.stopping && !Task.isCancelled {
                var claimed: [OutboxItem] = []
                // Refilled by batches, half the slots at a time: one claim statement per row would
                // cost the database more than the rest of the row's bookkeeping.
                if settings.concurrency - sending >= max(1, settings.concurrency / 2) && recording < settings.concurrency {
                    do {
                        if ContinuousClock.now - lastHoldCheck > .seconds(1) {
                            try await holdAbandonedHandovers()
                            lastHoldCheck = .now
                        }
                        claimed = try await claim(channels: channels, limit: settings.concurrency - sending)
                        if shutdownNotice.stopping && !claimed.isEmpty {
                            // Claimed while the process began to stop: left for the next start, not
                            // sent in the shutdown's last seconds.
                            let claims = claimed.map { OutboxStore.Claim(id: $0.id, attempt: $0.attempts) }
                            claimed = []
                            try await database.withConnection { try await OutboxStore(logger: logger).giveBack(claims, worker: name, on: $0) }
                        }
                    } catch {
                        // The database may be restarting; the next look tries again.
                        logger.warning("outbox claim failed", metadata: ["error": "\(String(reflecting: error))"])
                    }
                }
                let mails = await senders.email?.compose(claimed) ?? [:]
                for item in claimed {
                    sending += 1
                    group.addTask {
                        .sent(.init(attempt: await senders.deliver(item, composed: mails[item.id]), item: item))
                    }
                }
                // Full, or nothing to claim: wait for a delivery to finish or for the next look.
                if claimed.isEmpty || sending >= settings.concurrency {
                    if !ticking {
                        ticking = true
                        let interval = sending + recording == 0 ? settings.pollInterval : min(settings.pollInterval, .milliseconds(50))
                        group.addTask {
                            // Graceful shutdown ends an idle wait at once.
                            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                            return .tick
                        }
                    }
                    switch await group.next() {
                    case .sent(let outcome):
                        sending -= 1
                        record(outcome)
                    case .recorded: recording -= 1
                    case .tick: ticking = false
                    case nil: break
                    }
                }
            }
            while let finished = await group.next() {
                if case .sent(let outcome) = finished { record(outcome) }
            }
        }
    }

    private func claim(channels: [Channel], limit: Int) async throws -> [OutboxItem] {
        // One statement, committed on its own: no BEGIN and COMMIT around it.
        try await database.withConnection { connection in
            try await OutboxStore(logger: logger).claim(worker: name, channels: channels, lease: settings.lease, limit: limit, maxAttempts: settings.maxAttempts, on: connection)
        }
    }

    private func holdAbandonedHandovers() async throws {
        try await database.withTransaction { connection in
            let store = OutboxStore(logger: logger)
            for (outboxID, replyID, attempts, reason) in try await store.holdAbandonedHandovers(maxAttempts: settings.maxAttempts, on: connection) {
                logger.warning("delivery held for a person", metadata: ["outbox_id": "\(outboxID)", "reason": "\(reason)"])
                try await EventStore(logger: logger).record(
                    .replyHeld, reply: replyID, actor: nil, data: ["reason": reason, "attempts": attempts], on: connection)
            }
        }
    }

    /// The handover mark (with the mail `message`, when composed now), committed; throws when the
    /// row is no longer this worker's.
    func handover(_ item: OutboxItem, message: [UInt8]? = nil) async throws {
        // From here the row is held, not retried, if its lease runs out; so the lease must outlast the
        // wait for the relay's or provider's answer (and the commit of that answer). A provider gets one
        // request per recipient still pending, each up to its connect timeout (10 s) and the exchange's.
        let wait = item.channel == .email || item.channel == .webform
            ? Duration.milliseconds(settings.smtpTimeouts.dataEnd.nanoseconds / 1_000_000)
            : (settings.providerTimeout + .seconds(10)) * max(item.pendingRecipients.count, 1)
        let ours = try await handovers.submit(.init(claim: .init(id: item.id, attempt: item.attempts), lease: settings.lease + wait + .seconds(10), message: message))
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
                    dkim: try settings.dkim.map { try DKIMSigner(domain: from.asciiDomain, key: $0) })
            } else {
                email = nil
            }
            if settings.twilio != nil || settings.vonage != nil || settings.line != nil || settings.chatGateway != nil {
                providers = ProviderDelivery(logger: worker.logger, settings: settings,
                                             http: try ProviderHTTPClient(group: group, timeout: .milliseconds(Int64(settings.providerTimeout.seconds * 1000))),
                                             publicURL: worker.publicURL)
            } else {
                providers = nil
            }
        }

        func deliver(_ item: OutboxItem, composed: Result<[UInt8], any Error>?) async -> DeliveryAttempt {
            let worker = self.worker
            let handover: @Sendable () async throws -> Void = { try await worker.handover(item) }
            switch item.channel {
            case .email, .webform:
                guard let email else { return .deferred(item, "mail delivery is not configured") }
                return await email.deliver(item, composed: composed) { message in try await worker.handover(item, message: message) }
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
