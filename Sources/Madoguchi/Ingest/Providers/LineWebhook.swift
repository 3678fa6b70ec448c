import Foundation
import HTTPTypes
import Logging
import PostgresNIO

/// The LINE Messaging API webhook: several events per request, signed with `X-Line-Signature`,
/// each event taken once by its `webhookEventId` however often LINE redelivers it.
struct LineWebhook: Sendable {
    let database: Database
    let logger: Logger
    let settings: ProviderSettings
    let chat: ChatIngest

    func receive(_ request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        try await verify(request)
        let payload: Payload
        do {
            payload = try JSONDecoder().decode(Payload.self, from: Data(request.body))
        } catch {
            try await request.fail(Problem(.malformedBody, status: .badRequest, title: "Malformed body",
                                           detail: "A LINE webhook body is a JSON object with an events array: \(Self.describe(error))"),
                                   database: database, logger: logger)
        }
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            let payloadID = try await payloads.insert(
                channel: .chat, provider: "line", idempotencyKey: nil, body: request.body, contentType: request.contentType,
                apiKeyID: nil, on: connection)
            var results: [ProviderEventAnswer] = []
            var firstMessage: UUID?
            for event in payload.events {
                let result = try await take(event, payloadID: payloadID, on: connection)
                if firstMessage == nil, let id = result.inbound?.messageID { firstMessage = id }
                results.append(result)
            }
            let answer = ProviderWebhookAnswer(inboundID: payloadID, provider: "line", events: results)
            try await payloads.finish(payloadID, providerMessageID: nil, answer: .webhook(answer), messageID: firstMessage, on: connection)
            return answer
        }
    }

    /// Why a request cannot be verified, known from its headers before its body is read.
    static func refusalBeforeBody(headers: HTTPFields, settings: ProviderSettings) -> String? {
        guard !settings.lineChannelSecrets.isEmpty else {
            return "No LINE channel secret is configured (MADOGUCHI_LINE_CHANNEL_SECRETS), so no LINE request can be verified."
        }
        guard let presented = headers[.lineSignature], !presented.isEmpty else {
            return "X-Line-Signature is missing; LINE signs every webhook it sends."
        }
        return nil
    }

    private func verify(_ request: WebhookRequest) async throws {
        guard let presented = request.headers[.lineSignature] else { throw Problem.internalError }
        let expected = settings.lineChannelSecrets.map { WebhookSignature.line(body: request.body, channelSecret: $0) }
        guard WebhookSignature.matches(presented, anyOf: expected) else {
            try await request.refuse("X-Line-Signature does not match the body under any configured channel secret.", database: database, logger: logger)
        }
    }

    /// One event, in the webhook's transaction. The event's row in `provider_events` is what makes a
    /// redelivery (even one running concurrently: it waits on the row) a duplicate.
    private func take(_ event: Event, payloadID: UUID, on connection: PostgresConnection) async throws -> ProviderEventAnswer {
        guard let eventID = event.webhookEventId, !eventID.isEmpty, eventID.count <= 200 else {
            return .init(type: event.type, result: .ignored, detail: "The event has no webhookEventId.")
        }
        // A new message event also takes its chat's locks, in the same statement and only once its
        // row is in: a redelivery waits on that row first, as it did when the locks came later.
        let chat = event.type == "message" ? event.message.map { event.inboundChat($0) } : nil
        let rows = try await connection.rows("""
            WITH stored_event AS (
                INSERT INTO provider_events (provider, event_id, event_type, inbound_payload_id)
                VALUES ('line', \(eventID), \(Text.prefix(event.type, 100)), \(payloadID))
                ON CONFLICT (provider, event_id) DO NOTHING
                RETURNING event_id
            )
            SELECT stored_event.event_id FROM stored_event, LATERAL (
                SELECT count(*) FROM (
                    SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
                    FROM unnest(\(chat.map(ChatIngest.lockKeys) ?? [])::text[]) WITH ORDINALITY AS keys(key, n)
                    ORDER BY n
                ) AS taken
            ) AS locked
            """, preparedAs: StoreEvent.self, logger: logger)
        let isNew = !rows.isEmpty
        guard isNew else { return try await duplicate(event, eventID: eventID, chat: chat, on: connection) }

        switch event.type {
        case "message": return try await takeMessage(event, chat: chat, eventID: eventID, payloadID: payloadID, on: connection)
        case "follow", "unfollow": return try await takeFollow(event, eventID: eventID, on: connection)
        case "postback": return try await takePostback(event, eventID: eventID, on: connection)
        case "unsend": return try await takeUnsend(event, eventID: eventID, on: connection)
        default:
            return .init(eventID: eventID, type: event.type, result: .ignored, detail: "Madoguchi does not act on LINE '\(event.type)' events.")
        }
    }

    /// A message joins its conversation (user, group or room) like any chat message.
    /// `chat`: the event's message as a chat message, whose locks the event's insert took.
    private func takeMessage(
        _ event: Event, chat message: InboundChat?, eventID: String, payloadID: UUID, on connection: PostgresConnection
    ) async throws -> ProviderEventAnswer {
        guard let message else { return .init(eventID: eventID, type: event.type, result: .ignored, detail: "No message object.") }
        // Taken in before through /v1/inbound/chat (a gateway relaying the same LINE message): that
        // message is the answer. Inserting it again would fail the whole batch, other events with it.
        let earlier = try await duplicate(event, eventID: eventID, chat: message, on: connection)
        if earlier.inbound != nil {
            var answer = earlier
            answer.detail = "The message was taken in before (through /v1/inbound/chat, or another event naming the same message id)."
            return answer
        }
        let taken = try await chat.take(message, payloadID: payloadID, locked: true, on: connection)
        return .init(eventID: eventID, type: event.type, result: .taken, inbound: taken.outcome)
    }

    /// An unfollowing user has blocked the account: nothing pushed reaches them until they follow
    /// again, so their LINE identity is undeliverable (replies skip it) until a follow clears it.
    private func takeFollow(_ event: Event, eventID: String, on connection: PostgresConnection) async throws -> ProviderEventAnswer {
        guard let userID = event.source?.userId else { return .init(eventID: eventID, type: event.type, result: .ignored, detail: "No user id in the source.") }
        let customer = try await IdentityResolver(logger: logger).resolve(kind: .line, value: userID, rawValue: userID, displayName: nil, on: connection)
        let blocked = event.type == "unfollow"
        let identities = IdentityStore(logger: logger)
        if blocked {
            let reason = "LINE: the user unfollowed (blocked) the account"
            for customerID in try await identities.markUndeliverable(kind: .line, value: userID, reason: reason, on: connection) {
                try await EventStore(logger: logger).record(
                    .identityUndeliverable, customerID: customerID, actor: nil,
                    data: ["kind": "line", "value": userID, "reason": reason, "source": "line_unfollow"], on: connection)
            }
        } else {
            // Not past an unfollow recorded after this follow happened (LINE redelivers late events).
            try await identities.markDeliverable(kind: .line, value: userID, happenedAt: event.timestamp.map { Date(timeIntervalSince1970: Double($0) / 1000) },
                                                 on: connection)
        }
        try await EventStore(logger: logger).record(
            blocked ? .customerUnfollowed : .customerFollowed, customerID: customer.customerID, actor: nil,
            data: ["provider": "line", "user_id": userID], on: connection)
        return .init(eventID: eventID, type: event.type, result: .recorded, detail: blocked ? "The LINE identity is marked undeliverable." : nil)
    }

    /// A tap on a button or rich menu: recorded for whoever acts on it, with the customer known.
    private func takePostback(_ event: Event, eventID: String, on connection: PostgresConnection) async throws -> ProviderEventAnswer {
        guard let userID = event.source?.userId else { return .init(eventID: eventID, type: event.type, result: .ignored, detail: "No user id in the source.") }
        let customer = try await IdentityResolver(logger: logger).resolve(kind: .line, value: userID, rawValue: userID, displayName: nil, on: connection)
        try await EventStore(logger: logger).record(
            .chatPostback, customerID: customer.customerID, actor: nil,
            data: ["provider": "line", "user_id": userID, "postback": event.postback?.data ?? ""], on: connection)
        return .init(eventID: eventID, type: event.type, result: .recorded)
    }

    /// The customer withdrew a message: it stays on the timeline (the agent may have read it), marked.
    private func takeUnsend(_ event: Event, eventID: String, on connection: PostgresConnection) async throws -> ProviderEventAnswer {
        guard let messageID = event.unsend?.messageId else { return .init(eventID: eventID, type: event.type, result: .ignored) }
        if let (id, ticketID, customerID) = try await MessageStore(logger: logger).markWithdrawn(
            channel: .chat, provider: "line", providerMessageID: messageID, on: connection) {
            try await EventStore(logger: logger).record(
                .messageUnsent, ticketID: ticketID, customerID: customerID, messageID: id, actor: nil, data: ["provider": "line"], on: connection)
            return .init(eventID: eventID, type: event.type, result: .recorded, detail: "The customer withdrew the message.")
        }
        return .init(eventID: eventID, type: event.type, result: .noMatchingMessage)
    }

    /// A redelivered event. For a message event, the answer names the message the first delivery
    /// made, found by LINE's message id (the same in every delivery of the event), so taking an
    /// event costs no write beyond its row in `provider_events`.
    private func duplicate(_ event: Event, eventID: String, chat message: InboundChat?, on connection: PostgresConnection) async throws
        -> ProviderEventAnswer
    {
        var result = ProviderEventAnswer(eventID: eventID, type: event.type, result: .duplicate, detail: "Taken from an earlier delivery of this event.")
        guard let message else { return result }
        result.inbound = try await InboundPayloadStore(logger: logger).earlierMessage(
            channel: .chat, provider: message.provider, providerMessageID: message.providerMessageID, on: connection)
        return result
    }

    /// Every event's first statement, prepared: its row in `provider_events` and its chat's locks.
    private enum StoreEvent: PreparedSite { static let name = "madoguchi_line_store_event" }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "'\(key.stringValue)' is missing at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        default:
            return "not JSON"
        }
    }
}

extension HTTPField.Name {
    static let lineSignature = Self("X-Line-Signature")!
}
