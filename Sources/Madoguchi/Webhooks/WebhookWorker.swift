import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle

/// Delivers the event feed to webhook endpoints: each endpoint follows the feed at its own cursor
/// and gets its events one at a time, in order — the next one waits until the receiver has taken this
/// one (at least once: a retry carries the same `webhook-id`, so receivers dedupe). Failed attempts
/// back off with jitter; an endpoint failing `disableAfter` times in a row is disabled (with an
/// event) until an admin re-enables it. Endpoints are claimed with `FOR UPDATE SKIP LOCKED` and a
/// lease, so any number of workers share them.
struct WebhookWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    let settings: WebhookSettings
    let notifier: EventNotifier?
    /// The process has begun to stop: claim nothing more (see `ShutdownNotice`).
    var shutdownNotice = ShutdownNotice()
    let name = "\(ProcessInfo.processInfo.hostName):\(getpid()):webhooks:\(UUID().uuidString.prefix(8).lowercased())"

    var store: WebhookStore { WebhookStore(logger: logger) }
    var feed: EventFeed { EventFeed(logger: logger) }

    func run() async throws {
        let http = try ProviderHTTPClient(group: MultiThreadedEventLoopGroup.singleton, timeout: .milliseconds(Int64(settings.timeout.seconds * 1000)))
        let resolver = WebhookResolver(threads: settings.concurrency, settings: settings)
        defer { resolver.shutdown() }
        await migrator.waitUntilCurrent(database, logger: logger)
        await serveUntilShutdown(http: http, resolver: resolver)
        await shutdownNotice.waitForTurn()
    }

    private enum Finished: Sendable {
        /// An endpoint's turn ended; whether it delivered (or tried to deliver) anything.
        case served(delivered: Bool)
        /// A commit wrote events, or the poll interval passed.
        case woken
    }

    /// Keeps up to `concurrency` endpoints served at once, each on its own turn: a slot that frees is
    /// filled at once, so a slow receiver (every request taking most of the timeout, for a hundred
    /// events) holds only its own slot, never the deliveries to the others. A turn that delivered
    /// something looks for more work at once (its endpoint is due again while events remain); an
    /// endpoint found caught up waits, with the rest, for the next commit that writes events (or the
    /// poll interval, which also brings back endpoints whose backoff ended). On graceful shutdown it
    /// claims nothing more and lets the turns in flight end (each stops after its current request).
    private func serveUntilShutdown(http: ProviderHTTPClient, resolver: WebhookResolver) async {
        var nextRetention = ContinuousClock.now
        await withTaskGroup(of: Finished.self) { group in
            var serving = 0
            var waking = false
            var lookNow = true
            var foundNone = false
            while !shutdownNotice.stopping && !Task.isCancelled {
                let seen = notifier?.generation ?? 0
                if lookNow && serving < settings.concurrency {
                    lookNow = false
                    do {
                        let endpoints = try await database.withConnection {
                            try await store.claim(worker: name, lease: settings.lease, limit: settings.concurrency - serving, on: $0)
                        }
                        foundNone = endpoints.isEmpty
                        for endpoint in endpoints {
                            serving += 1
                            group.addTask { .served(delivered: await serve(endpoint, http: http, resolver: resolver)) }
                        }
                        if let days = settings.retentionDays, ContinuousClock.now >= nextRetention {
                            // Between deliveries, so a few seconds at most: the first run on a large feed
                            // (tens of millions of old events) held every endpoint's deliveries, and a
                            // shutdown, until it was done. Cut short, the rest comes in a moment.
                            let deadline = ContinuousClock.now + Self.retentionBudget
                            let notice = shutdownNotice
                            let keepGoing = { !notice.stopping && ContinuousClock.now < deadline }
                            let retention = EventRetention(database: database, logger: logger)
                            let events = try await retention.removeEvents(olderThan: days, while: keepGoing)
                            let deliveries = try await retention.removeDeliveries(olderThan: days, while: keepGoing)
                            nextRetention = .now + (events.finished && deliveries.finished ? .seconds(3600) : .seconds(10))
                        }
                    } catch {
                        // The database may be restarting: the next wake tries again.
                        foundNone = true
                        logger.warning("webhook claim failed", metadata: ["error": "\(String(reflecting: error))"])
                    }
                }
                if !waking {
                    waking = true
                    let notifier = foundNone && serving == 0 ? nil : notifier
                    let interval = settings.pollInterval
                    group.addTask {
                        if let notifier {
                            // Endpoints are being served or waiting for events: the next commit wakes the worker.
                            await notifier.wait(after: seen, upTo: interval)
                        } else {
                            // No endpoint to serve (none, or all backing off): no reason to hold a listening connection.
                            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                        }
                        return .woken
                    }
                }
                switch await group.next() {
                case .served(let delivered):
                    serving -= 1
                    lookNow = lookNow || delivered
                case .woken:
                    waking = false
                    lookNow = true
                case nil:
                    break
                }
            }
            // Graceful shutdown: the turns in flight end after their current request; the waker at once.
            while await group.next() != nil {}
        }
    }

    /// How long one retention run may hold the worker's loop.
    static let retentionBudget = Duration.seconds(2)

    /// Events an endpoint gets in one turn before the worker lets it go (others get theirs), and
    /// events read from the feed at a time.
    static let turn = 100
    static let pageSize = 20
    /// How long a turn goes on sending before it looks again whether the endpoint was changed, disabled
    /// or deleted meanwhile: a slow receiver's page can take minutes.
    static let lookAgainAfter = Duration.seconds(1)

    /// How far `sent` (events delivered in feed order after `cursor`) covers the feed as `filter`
    /// reads it: up to the last of them before the first event `filter` lets through that was not
    /// sent. An endpoint whose types grew while a page went out (between two looks, `lookAgainAfter`)
    /// moved to its last event sent, and the events the old types had left out before it were passed
    /// over for good. Sent events beyond the gap go again, with their webhook-ids, which receivers
    /// deduplicate by.
    static func covered(after cursor: FeedCursor, sent: [FeedEvent], filter: EventFeed.Filter, feed: EventFeed,
                        on connection: PostgresConnection) async throws -> FeedCursor {
        guard !sent.isEmpty else { return cursor }
        let now = try await feed.page(after: cursor, filter: filter, limit: sent.count, on: connection)
        var covered = cursor
        for (event, delivered) in zip(now.events, sent) {
            guard event.cursor == delivered.cursor else { break }
            covered = delivered.cursor
        }
        return covered
    }

    /// Sends the endpoint its next events in order, while they succeed (up to a turn), then lets go.
    /// True when it delivered (or tried to deliver) anything, or let go of a changed endpoint to take
    /// it up again as it now is.
    ///
    /// Events go out one request at a time, in order; each page's attempts are then logged in one
    /// transaction that also moves the endpoint's cursor past what was taken (or counts the failure).
    /// A crash before that commit sends those events again, with the same `webhook-id`s — at least
    /// once, never lost — and costs one commit per page instead of one per event.
    ///
    /// The endpoint is read when it is claimed. Whether it is still as read, still active and still
    /// this worker's is looked at after each page is read and again before a request once a second has
    /// passed, so an admin's change takes effect within about a second and one request: no event goes
    /// to an address the endpoint no longer has, is signed only with secrets it no longer holds, or is
    /// passed over by a cursor moved on under event types it no longer filters by.
    private func serve(_ endpoint: WebhookEndpoint, http: ProviderHTTPClient, resolver: WebhookResolver) async -> Bool {
        var cursor = endpoint.cursor
        var sent = false
        // The endpoint's lease is not renewed during a turn: past it another worker may take the
        // endpoint up from the last recorded cursor and send the same events again, interleaved with
        // ours. So the turn ends while one more request and its logging still fit: the receiver's
        // name looked up (up to the timeout, WebhookResolver) and then the exchange (up to it again).
        let started = ContinuousClock.now
        func leaseLeft() -> Bool { ContinuousClock.now - started + settings.timeout * 2 + .seconds(30) < settings.lease }
        do {
            let key = try await database.withConnection { try await feed.key(on: $0) }
            var remaining = Self.turn
            while remaining > 0 && !shutdownNotice.stopping && leaseLeft() {
                let limit = min(remaining, Self.pageSize)
                // Looked at after the page is read: an event committed after the endpoint was deleted,
                // disabled, changed or taken over is then never sent by this worker.
                var (page, standing) = try await database.withConnection { connection in
                    let page = try await feed.page(after: cursor, filter: endpoint.filter, limit: limit, on: connection)
                    return (page, try await store.standing(of: endpoint, worker: name, on: connection))
                }
                var lastLook = ContinuousClock.now
                var attempts: [(event: FeedEvent, attempt: WebhookAttempt)] = []
                for event in page.events where standing == .serving && !shutdownNotice.stopping && leaseLeft() {
                    if ContinuousClock.now - lastLook > Self.lookAgainAfter {
                        standing = try await database.withConnection { try await store.standing(of: endpoint, worker: name, on: $0) }
                        lastLook = .now
                        guard standing == .serving else { break }
                    }
                    let attempt = try await self.attempt(event, to: endpoint, key: key, http: http, resolver: resolver)
                    attempts.append((event, attempt))
                    if !attempt.succeeded { break }
                }
                remaining -= attempts.count
                sent = sent || !attempts.isEmpty || standing == .changed
                let failure = attempts.last.flatMap { $0.attempt.succeeded ? nil : $0.attempt }
                let taken = attempts.last(where: { $0.attempt.succeeded })?.event.cursor
                // A page that was not full means everything below the horizon has been seen: past what the
                // filter left out too, unless an event failed, or shutdown or a change cut the page short.
                let seenAll = page.events.count < limit && attempts.count == page.events.count && failure == nil && standing == .serving
                let (stillOurs, moveTo) = try await database.withTransaction { connection -> (Bool, FeedCursor) in
                    for (event, attempt) in attempts {
                        _ = try await store.log(endpoint.id, event: event, attempt: attempt, manual: false, on: connection)
                    }
                    var moveTo = taken ?? cursor
                    // Past what the filter left out only if the filter is still the one the page was read
                    // with, looked at under the row's lock, which a change takes too: event types added
                    // while the last request was out must not be passed over.
                    let standingNow = try await store.standing(of: endpoint, worker: name, lock: true, on: connection)
                    if seenAll, standingNow == .serving {
                        moveTo = page.next
                    } else if standingNow == .changed, taken != nil {
                        // Changed since the page was read: events the old types left out between the
                        // sent ones may be wanted now. Only as far as the feed, read with the endpoint's
                        // types as they are, holds nothing unsent.
                        let now = try await store.endpoint(endpoint.id, on: connection)
                        let sentEvents = attempts.filter(\.attempt.succeeded).map(\.event)
                        moveTo = try await Self.covered(after: cursor, sent: sentEvents, filter: now.filter, feed: feed, on: connection)
                    }
                    func answer(_ ours: Bool) -> (Bool, FeedCursor) { (ours, moveTo) }
                    if moveTo != cursor, !(try await store.advance(endpoint.id, to: moveTo, worker: name, on: connection)) { return answer(false) }
                    if let failure {
                        try await recordFailure(of: endpoint, failure, on: connection)
                        return answer(false)
                    }
                    if seenAll || standing != .serving {
                        // Due again at once: the worker itself waits for the next commit (or its poll), or
                        // takes a changed endpoint up again as it now is. (A no-op once another worker has it.)
                        try await store.release(endpoint.id, worker: name, after: .zero, on: connection)
                        return answer(false)
                    }
                    return answer(true)
                }
                cursor = moveTo
                guard stillOurs else { return sent }
            }
            try await database.withConnection { try await store.release(endpoint.id, worker: name, after: .zero, on: $0) }
        } catch {
            // Taken up again from its last recorded cursor (what was sent since goes again, with the
            // same webhook-ids): after a short pause, not when the lease runs out five minutes from
            // now — a database error while logging a page held the endpoint's deliveries that long.
            // If letting go fails too, the lease still ends.
            logger.warning("webhook delivery failed", metadata: ["webhook": "\(endpoint.id)", "error": "\(String(reflecting: error))"])
            _ = try? await database.withConnection { try await store.release(endpoint.id, worker: name, after: settings.backoff(afterFailures: 1), on: $0) }
        }
        return sent
    }

    /// One more failure in a row: the endpoint backs off, or is disabled (with an event) at the limit.
    private func recordFailure(of endpoint: WebhookEndpoint, _ attempt: WebhookAttempt, on connection: PostgresConnection) async throws {
        let streak = try await store.recordFailure(endpoint.id, worker: name, on: connection)
        guard streak >= settings.disableAfter else {
            try await store.release(endpoint.id, worker: name, after: settings.backoff(afterFailures: streak), on: connection)
            return
        }
        // The status first: a receiver's error page alone ("ok", "error") says nothing of what failed.
        let last = switch (attempt.status, attempt.error) {
        case (let status?, let error?) where !error.isEmpty: "HTTP \(status): \(error)"
        case (let status?, _): "HTTP \(status)"
        case (nil, let error): error ?? "no answer"
        }
        let reason = "\(streak) failed deliveries in a row; the last: \(last)"
        try await store.disable(endpoint.id, reason: reason, on: connection)
        try await EventStore(logger: logger).record(.webhookDisabled, actor: nil, data: [
            "webhook_id": endpoint.id.lowercased, "reason": reason,
        ], on: connection)
        logger.warning("webhook disabled", metadata: ["webhook": "\(endpoint.id)", "reason": "\(reason)"])
    }

    /// One request: the event, signed, to the endpoint's (checked) address. Whatever happens is
    /// returned for the delivery log, never thrown.
    func attempt(_ event: FeedEvent, to endpoint: WebhookEndpoint, key: FeedCursor.Key, http: ProviderHTTPClient, resolver: WebhookResolver) async throws -> WebhookAttempt {
        let start = ContinuousClock.now
        var attempt = WebhookAttempt(webhookID: "evt_\(event.id)")
        let body: [UInt8]
        do {
            body = try WebhookPayload.body(event, key: key)
        } catch {
            // A failed attempt like any other (logged, counted towards disabling the endpoint, shown in
            // its deliveries), not an error that lets the endpoint go and takes it up at the same event
            // every few seconds for ever.
            logger.error("a webhook event could not be written", metadata: ["event": "\(event.id)", "error": "\(String(reflecting: error))"])
            attempt.error = "the event could not be written as JSON: \(error)"
            return attempt
        }
        do {
            let address = try WebhookAddress.parse(endpoint.url, allowPrivate: settings.allowPrivateAddresses)
            let resolved = try await resolver.resolve(address, allowPrivate: settings.allowPrivateAddresses)
            var headers = StandardWebhooks.headers(id: attempt.webhookID, timestamp: Int(Date().timeIntervalSince1970), body: body, secrets: endpoint.secrets)
            headers.append(("Content-Type", "application/json"))
            let response = try await http.send(.POST, endpoint.url, headers: headers, body: body, connectTo: resolved)
            attempt.status = response.status
            if !(200..<300).contains(response.status) {
                attempt.error = (300..<400).contains(response.status) ? "redirects are not followed" : Text.limit(response.text, 300)
            }
        } catch let problem as Problem {
            attempt.error = problem.detail
        } catch {
            attempt.error = String(describing: error)
        }
        attempt.duration = ContinuousClock.now - start
        return attempt
    }
}

/// What one request to an endpoint came to.
struct WebhookAttempt: Sendable {
    var webhookID: String
    var status: Int?
    var error: String?
    var duration: Duration = .zero

    var succeeded: Bool { status.map { (200..<300).contains($0) } ?? false }
}

/// The body every webhook carries: the event exactly as the feed shows it.
enum WebhookPayload {
    static func body(_ event: FeedEvent, key: FeedCursor.Key) throws -> [UInt8] {
        try event.json(key: key)
    }
}
