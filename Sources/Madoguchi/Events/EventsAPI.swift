import Foundation
import MadoguchiAPI
import OpenAPIRuntime
import ServiceLifecycle

/// The event feed over HTTP: pages with an optional long poll, and Server-Sent Events.
extension APIHandler {
    var feed: EventFeed { EventFeed(logger: logger) }

    func listEvents(_ input: Operations.ListEvents.Input) async throws -> Operations.ListEvents.Output {
        let limit = input.query.limit ?? 100
        guard (1...500).contains(limit) else { throw Problem.invalidParameter("limit", "must be 1 to 500") }
        let wait = input.query.wait ?? 0
        guard (0...60).contains(wait) else { throw Problem.invalidParameter("wait", "must be 0 to 60 seconds") }
        let filter = try Self.feedFilter(types: input.query.types, ticketID: input.query.ticketId?.uuid)
        let (key, start) = try await database.withConnection { connection -> (FeedCursor.Key, FeedCursor) in
            try await feed.checkNotStalled(on: connection)
            let key = try await feed.key(on: connection)
            // Whether retention passed it is asked with each page below, after the page is read.
            guard let after = try input.query.after.map({ try FeedCursor.decode($0, with: key) }) else { return (key, .start) }
            return (key, after)
        }
        var cursor = start
        let deadline = ContinuousClock.now + .seconds(wait)
        // A page of events comes out only while the key is in force: one revoked during a minute's
        // poll would otherwise still be sent what was written meanwhile (the stream checks too). The
        // first page as well: on a loaded machine a request authenticated before the revocation
        // reached its first read after it, and events written since came out (a full test run).
        let keyID = try principal.keyID
        while true {
            let seen = notifier.generation
            let (page, inForce) = try await database.withConnection { [cursor] connection in
                let page = try await feed.page(after: cursor, filter: filter, limit: limit, on: connection)
                // After the page: asked before it, a removal committing in between went unseen.
                try await feed.checkKept(cursor, on: connection)
                guard !page.events.isEmpty else { return (page, true) }
                return (page, try await APIKeyStore(logger: logger).isInForce(keyID, on: connection))
            }
            guard inForce else { throw AuthMiddleware.unauthenticated("The API key was revoked while the request was answered.", keyWasSent: true) }
            cursor = page.next
            let remaining = deadline - .now
            if !page.events.isEmpty || remaining <= .zero || Task.isShuttingDownGracefully {
                return .ok(.init(body: .json(.init(items: try page.events.map { try .init($0, key: key) }, nextCursor: page.next.encoded(with: key)))))
            }
            // Woken at the next commit of events. Committed events held back by an older transaction
            // bring no second notification when that one ends: look again shortly.
            await notifier.wait(after: seen, upTo: page.heldBack ? min(remaining, .milliseconds(100)) : remaining)
        }
    }

    func streamEvents(_ input: Operations.StreamEvents.Input) async throws -> Operations.StreamEvents.Output {
        let filter = try Self.feedFilter(types: input.query.types, ticketID: input.query.ticketId?.uuid)
        let (key, start) = try await database.withConnection { connection -> (FeedCursor.Key, FeedCursor) in
            try await feed.checkNotStalled(on: connection)
            let key = try await feed.key(on: connection)
            // A reconnecting EventSource sends the last id it saw; it wins over the URL's `after`.
            guard let (given, field) = input.headers.lastEventID.map({ ($0, "Last-Event-ID") }) ?? input.query.after.map({ ($0, "after") }) else {
                return (key, try await feed.end(on: connection))
            }
            let cursor = try FeedCursor.decode(given, with: key, field: field)
            try await feed.checkKept(cursor, field: field, on: connection)
            return (key, cursor)
        }
        let stream = EventStream(database: database, feed: feed, notifier: notifier, key: key, filter: filter, start: start,
                                 keyID: RequestScope.current?.principal?.keyID, logger: logger)
        return .ok(.init(body: .textEventStream(HTTPBody(stream, length: .unknown, iterationBehavior: .single))))
    }

    static func feedFilter(types: String?, ticketID: UUID?) throws -> EventFeed.Filter {
        var filter = EventFeed.Filter(ticketID: ticketID)
        if let types {
            let names = types.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let unknown = names.filter { EventType(rawValue: $0) == nil }
            guard unknown.isEmpty else {
                throw Problem.invalidParameter("types", "\(unknown.joined(separator: ", ")) \(unknown.count == 1 ? "is not an event type" : "are not event types"); see EventType in openapi.yaml")
            }
            filter.types = names.isEmpty ? nil : names
        }
        return filter
    }
}

extension Components.Schemas.FeedEvent {
    init(_ event: FeedEvent, key: FeedCursor.Key) throws {
        let data = try JSONDecoder().decode(OpenAPIObjectContainer.self, from: Data(event.data.utf8))
        guard let type = Components.Schemas.EventType(rawValue: event.type) else { throw UnexpectedStoredValue(event.type, for: EventType.self) }
        self.init(
            id: event.id, cursor: event.cursor.encoded(with: key), _type: type,
            occurredAt: event.occurredAt, ticketId: event.ticketID.resourceID, customerId: event.customerID.resourceID,
            messageId: event.messageID.resourceID,
            actor: event.actorKeyID == nil && event.actorAgentID == nil ? nil : .init(keyId: event.actorKeyID.resourceID, agentId: event.actorAgentID.resourceID),
            data: .init(additionalProperties: data))
    }
}
