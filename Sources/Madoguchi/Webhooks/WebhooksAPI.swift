import Foundation
import MadoguchiAPI
import NIOPosix
import OpenAPIRuntime

/// Webhook endpoints (admin): subscribe, change, rotate secrets, read the delivery log, redeliver.
extension APIHandler {
    var webhookStore: WebhookStore { WebhookStore(logger: logger) }

    /// Each type once, in the order given: a type named twice is one subscription, and is read back once.
    static func distinct(_ types: [String]) -> [String] {
        var seen = Set<String>()
        return types.filter { seen.insert($0).inserted }
    }

    func listWebhooks(_ input: Operations.ListWebhooks.Input) async throws -> Operations.ListWebhooks.Output {
        let endpoints = try await database.withConnection { try await webhookStore.list(on: $0) }
        return .ok(.init(body: .json(.init(items: endpoints.map(Components.Schemas.Webhook.init)))))
    }

    func createWebhook(_ input: Operations.CreateWebhook.Input) async throws -> Operations.CreateWebhook.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let address = try WebhookAddress.parse(body.url, allowPrivate: webhooks.allowPrivateAddresses)
        let secret = StandardWebhooks.newSecret()
        let principal = try principal
        let endpoint = try await database.withTransaction { connection in
            // From now on: an endpoint does not receive the whole history when it subscribes.
            let endpoint = try await webhookStore.create(
                url: address.url.absoluteString, description: body.description, eventTypes: Self.distinct((body.eventTypes ?? []).map(\.rawValue)), secret: secret,
                startingAfter: try await feed.end(on: connection), on: connection)
            // The host only: the feed and every other endpoint see this event, and Slack-like URLs
            // carry their token in the path or query.
            try await EventStore(logger: logger).record(
                .webhookCreated, actor: principal, data: ["webhook_id": endpoint.id.lowercased, "host": address.url.host ?? ""], on: connection)
            return endpoint
        }
        return .created(.init(body: .json(.init(webhook: .init(endpoint), secret: secret))))
    }

    func getWebhook(_ input: Operations.GetWebhook.Input) async throws -> Operations.GetWebhook.Output {
        let endpoint = try await database.withConnection { try await webhookStore.endpoint(input.path.webhookId.uuid, on: $0) }
        return .ok(.init(body: .json(.init(endpoint))))
    }

    func updateWebhook(_ input: Operations.UpdateWebhook.Input) async throws -> Operations.UpdateWebhook.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let url = try body.url.map { try WebhookAddress.parse($0, allowPrivate: webhooks.allowPrivateAddresses).url.absoluteString }
        let principal = try principal
        let endpoint = try await database.withTransaction { connection in
            let current = try await webhookStore.endpoint(input.path.webhookId.uuid, lock: true, on: connection)
            let secrets = body.retireOldSecrets == true ? Array(current.secrets.prefix(1)) : nil
            let updated = try await webhookStore.update(
                current.id, url: url, description: body.description, eventTypes: body.eventTypes.map { Self.distinct($0.map(\.rawValue)) }, active: body.active,
                secrets: secrets, on: connection)
            try await EventStore(logger: logger).record(.webhookUpdated, actor: principal, data: [
                "webhook_id": current.id.lowercased, "active": updated.active, "secrets": updated.secrets.count, "rotated": false,
            ], on: connection)
            return updated
        }
        return .ok(.init(body: .json(.init(endpoint))))
    }

    func deleteWebhook(_ input: Operations.DeleteWebhook.Input) async throws -> Operations.DeleteWebhook.Output {
        let principal = try principal
        let id = input.path.webhookId.uuid
        try await database.withTransaction { connection in
            guard try await webhookStore.delete(id, on: connection) else { throw Problem.notFound("There is no webhook \(id.lowercased).") }
            try await EventStore(logger: logger).record(.webhookDeleted, actor: principal, data: ["webhook_id": id.lowercased], on: connection)
        }
        return .noContent(.init())
    }

    /// Secrets that sign a webhook's deliveries at once, at most.
    static let maximumWebhookSecrets = 5

    func rotateWebhookSecret(_ input: Operations.RotateWebhookSecret.Input) async throws -> Operations.RotateWebhookSecret.Output {
        let principal = try principal
        let secret = StandardWebhooks.newSecret()
        let endpoint = try await database.withTransaction { connection in
            let current = try await webhookStore.endpoint(input.path.webhookId.uuid, lock: true, on: connection)
            // Newest first. One more than the most that sign at once is refused: dropping the oldest
            // could drop the one the receiver still checks, and every delivery would fail its signature.
            guard current.secrets.count < Self.maximumWebhookSecrets else {
                throw Problem(Problem.Kind(rawValue: "too-many-secrets"), status: .conflict, title: "Too many secrets",
                              detail: "Webhook \(current.id.lowercased) already signs with \(Self.maximumWebhookSecrets) secrets; "
                                + "retire the old ones (PATCH with retire_old_secrets) first.")
            }
            let updated = try await webhookStore.update(
                current.id, url: nil, description: nil, eventTypes: nil, active: nil, secrets: [secret] + current.secrets, on: connection)
            try await EventStore(logger: logger).record(.webhookUpdated, actor: principal, data: [
                "webhook_id": current.id.lowercased, "active": updated.active, "secrets": updated.secrets.count, "rotated": true,
            ], on: connection)
            return updated
        }
        return .created(.init(body: .json(.init(webhook: .init(endpoint), secret: secret))))
    }

    func listWebhookDeliveries(_ input: Operations.ListWebhookDeliveries.Input) async throws -> Operations.ListWebhookDeliveries.Output {
        let limit = input.query.limit ?? 100
        guard (1...500).contains(limit) else { throw Problem.invalidParameter("limit", "must be 1 to 500") }
        let deliveries = try await database.withConnection { connection in
            let endpoint = try await webhookStore.endpoint(input.path.webhookId.uuid, on: connection)
            return try await webhookStore.deliveries(of: endpoint.id, limit: limit, on: connection)
        }
        return .ok(.init(body: .json(.init(items: deliveries.map(Components.Schemas.WebhookDelivery.init)))))
    }

    func redeliverWebhook(_ input: Operations.RedeliverWebhook.Input) async throws -> Operations.RedeliverWebhook.Output {
        let (endpoint, logged, event, key) = try await database.withConnection { connection in
            let endpoint = try await webhookStore.endpoint(input.path.webhookId.uuid, on: connection)
            let logged = try await webhookStore.delivery(input.path.deliveryId.uuid, of: endpoint.id, on: connection)
            let rows = try await connection.run("""
                SELECT id, xid::text AS xid_text, type, occurred_at, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data::text
                FROM events WHERE id = \(logged.eventID)
                """, logger: logger)
            var found: FeedEvent?
            for try await (id, xid, type, at, ticket, customer, message, keyID, agent, data)
                in rows.decode((Int64, String, String, Date, UUID?, UUID?, UUID?, UUID?, UUID?, String).self) {
                found = FeedEvent(id: id, xid: UInt64(xid) ?? 0, type: type, occurredAt: at, ticketID: ticket, customerID: customer, messageID: message,
                                  actorKeyID: keyID, actorAgentID: agent, data: data)
            }
            guard let found else { throw Problem.notFound("Event \(logged.eventID) is no longer kept (retention); it cannot be sent again.") }
            return (endpoint, logged, found, try await feed.key(on: connection))
        }
        _ = logged
        let worker = WebhookWorker(database: database, migrator: migrator, logger: logger, settings: webhooks, notifier: nil)
        let http = try ProviderHTTPClient(group: MultiThreadedEventLoopGroup.singleton, timeout: .milliseconds(Int64(webhooks.timeout.seconds * 1000)))
        // An admin's one request: one thread, let go when it is done (or, if the name servers hang, when they give up).
        let resolver = WebhookResolver(threads: 1, settings: webhooks)
        defer { resolver.shutdown() }
        let attempt = try await worker.attempt(event, to: endpoint, key: key, http: http, resolver: resolver)
        let delivery = try await database.withConnection { try await webhookStore.log(endpoint.id, event: event, attempt: attempt, manual: true, on: $0) }
        return .ok(.init(body: .json(.init(delivery))))
    }
}

extension Components.Schemas.Webhook {
    init(_ endpoint: WebhookEndpoint) {
        self.init(
            id: endpoint.id.resourceID, url: endpoint.url, description: endpoint.description, eventTypes: endpoint.eventTypes, active: endpoint.active,
            disabledReason: endpoint.disabledReason, disabledAt: endpoint.disabledAt, failureStreak: endpoint.failureStreak,
            secretCount: endpoint.secrets.count, createdAt: endpoint.createdAt, updatedAt: endpoint.updatedAt)
    }
}

extension Components.Schemas.WebhookDelivery {
    init(_ delivery: WebhookDelivery) {
        self.init(
            id: delivery.id.resourceID, eventId: delivery.eventID, webhookId: delivery.webhookID, attempt: delivery.attempt, status: delivery.status,
            error: delivery.error, durationMs: delivery.durationMilliseconds, manual: delivery.manual, createdAt: delivery.createdAt)
    }
}
