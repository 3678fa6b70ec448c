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
    let name = "\(ProcessInfo.processInfo.hostName):\(getpid()):webhooks:\(UUID().uuidString.prefix(8).lowercased())"

    var store: WebhookStore { WebhookStore(logger: logger) }
    var feed: EventFeed { EventFeed(logger: logger) }

    func run() async throws {
        let http = try ProviderHTTPClient(group: MultiThreadedEventLoopGroup.singleton, timeout: .milliseconds(Int64(settings.timeout.seconds * 1000)))
        while !Task.isShuttingDownGracefully, !(await schemaIsCurrent()) {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
        var lastRetention = ContinuousClock.now - .seconds(3600)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let seen = notifier?.generation ?? 0
            var delivered = false
            var claimed = false
            do {
                let endpoints = try await database.withConnection { try await store.claim(worker: name, lease: settings.lease, limit: settings.concurrency, on: $0) }
                claimed = !endpoints.isEmpty
                delivered = await withTaskGroup(of: Bool.self) { group in
                    for endpoint in endpoints { group.addTask { await serve(endpoint, http: http) } }
                    return await group.contains(true)
                }
                if let days = settings.retentionDays, ContinuousClock.now - lastRetention > .seconds(3600) {
                    lastRetention = .now
                    try await EventRetention(database: database, logger: logger).removeEvents(olderThan: days)
                }
            } catch {
                logger.warning("webhook round failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            guard !delivered else { continue }
            if claimed, let notifier {
                // Endpoints are waiting for events: the next commit wakes the worker at once.
                await notifier.wait(after: seen, upTo: settings.pollInterval)
            } else {
                // No endpoint to serve (none, or all backing off): no reason to hold a listening connection.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: settings.pollInterval) }
            }
        }
    }

    private func schemaIsCurrent() async -> Bool {
        (try? await database.withConnection { try await migrator.status($0, logger: logger) }.complete) ?? false
    }

    /// Sends the endpoint its next events in order, while they succeed (up to a batch), then lets go.
    /// True when it delivered (or tried to deliver) anything.
    private func serve(_ endpoint: WebhookEndpoint, http: ProviderHTTPClient) async -> Bool {
        var cursor = endpoint.cursor
        var sent = false
        do {
            for _ in 0..<100 where !Task.isShuttingDownGracefully {
                let (page, key) = try await database.withConnection { connection in
                    (try await feed.page(after: cursor, filter: endpoint.filter, limit: 1, on: connection), try await feed.key(on: connection))
                }
                guard let event = page.events.first else {
                    // Nothing (for this endpoint) below the horizon: remember what its filter passed over.
                    if page.next != cursor { _ = try await database.withConnection { try await store.advance(endpoint.id, to: page.next, worker: name, on: $0) } }
                    // Due again at once: the worker itself waits for the next commit (or its poll).
                    try await database.withConnection { try await store.release(endpoint.id, worker: name, after: .zero, on: $0) }
                    return sent
                }
                let delivered = try await deliver(event, to: endpoint, key: key, http: http, manual: false)
                sent = true
                guard delivered.succeeded else {
                    try await database.withTransaction { connection in
                        let streak = try await store.recordFailure(endpoint.id, worker: name, on: connection)
                        if streak >= settings.disableAfter {
                            let reason = "\(streak) failed deliveries in a row; the last: \(delivered.error ?? delivered.status.map { "HTTP \($0)" } ?? "no answer")"
                            try await store.disable(endpoint.id, reason: reason, on: connection)
                            try await EventStore(logger: logger).record(.webhookDisabled, actor: nil, data: [
                                "webhook_id": endpoint.id.lowercased, "reason": reason,
                            ], on: connection)
                            logger.warning("webhook disabled", metadata: ["webhook": "\(endpoint.id)", "reason": "\(reason)"])
                        } else {
                            try await store.release(endpoint.id, worker: name, after: settings.backoff(afterFailures: streak), on: connection)
                        }
                    }
                    return sent
                }
                cursor = event.cursor
                guard try await database.withConnection({ try await store.advance(endpoint.id, to: cursor, worker: name, on: $0) }) else { return sent }
            }
            try await database.withConnection { try await store.release(endpoint.id, worker: name, after: .zero, on: $0) }
        } catch {
            // The lease runs out and the endpoint is taken up again from its last recorded cursor.
            logger.warning("webhook delivery failed", metadata: ["webhook": "\(endpoint.id)", "error": "\(String(reflecting: error))"])
        }
        return sent
    }

    /// One attempt: the event, signed, to the endpoint's (checked) address; logged whatever happens.
    func deliver(_ event: FeedEvent, to endpoint: WebhookEndpoint, key: FeedCursor.Key, http: ProviderHTTPClient, manual: Bool) async throws -> WebhookDelivery {
        let body = try WebhookPayload.body(event, key: key)
        let webhookID = "evt_\(event.id)"
        let start = ContinuousClock.now
        var status: Int?
        var failure: String?
        do {
            let address = try WebhookAddress.parse(endpoint.url, allowPrivate: settings.allowPrivateAddresses)
            // getaddrinfo blocks: off the cooperative threads.
            let allowPrivate = settings.allowPrivateAddresses
            let resolved = try await NIOThreadPool.singleton.runIfActive { try address.resolve(allowPrivate: allowPrivate) }
            var headers = StandardWebhooks.headers(id: webhookID, timestamp: Int(Date().timeIntervalSince1970), body: body, secrets: endpoint.secrets)
            headers.append(("Content-Type", "application/json"))
            let response = try await http.send(.POST, endpoint.url, headers: headers, body: body, connectTo: resolved)
            status = response.status
            if !(200..<300).contains(response.status) {
                failure = (300..<400).contains(response.status) ? "redirects are not followed" : String(response.text.prefix(300))
            }
        } catch let problem as Problem {
            failure = problem.detail
        } catch {
            failure = String(describing: error)
        }
        let attempt = manual ? 1 : (try await database.withConnection { try await store.attempts(endpoint.id, eventID: event.id, on: $0) }) + 1
        return try await database.withConnection { connection in
            try await store.log(endpoint.id, event: event, webhookID: webhookID, attempt: attempt, status: status, error: failure,
                                duration: ContinuousClock.now - start, manual: manual, on: connection)
        }
    }
}

/// The body every webhook carries: the event exactly as the feed shows it.
enum WebhookPayload {
    static func body(_ event: FeedEvent, key: FeedCursor.Key) throws -> [UInt8] {
        try event.json(key: key)
    }
}
