import Foundation
import Logging
import MadoguchiAPI
import PostgresNIO

/// The LINE Messaging API webhook: several events per request, signed with `X-Line-Signature`,
/// each event taken once by its `webhookEventId` however often LINE redelivers it.
struct LineWebhook: Sendable {
    let database: Database
    let logger: Logger
    let settings: ProviderSettings
    let chat: ChatIngest

    func receive(_ request: WebhookRequest) async throws -> WebhookResult {
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
            var results: [WebhookEventResult] = []
            var firstMessage: UUID?
            for event in payload.events {
                let result = try await take(event, payloadID: payloadID, on: connection)
                if firstMessage == nil, let id = result.inbound?.messageId { firstMessage = id.uuid }
                results.append(result)
            }
            let answer = WebhookResult(inboundId: payloadID.resourceID, provider: "line", events: results)
            try await payloads.finish(payloadID, providerMessageID: nil, parseError: nil, responseStatus: 200, outcome: answer,
                                      messageID: firstMessage, on: connection)
            return answer
        }
    }

    private func verify(_ request: WebhookRequest) async throws {
        guard !settings.lineChannelSecrets.isEmpty else {
            try await request.refuse("No LINE channel secret is configured (MADOGUCHI_LINE_CHANNEL_SECRETS), so no LINE request can be verified.",
                                     database: database, logger: logger)
        }
        guard let presented = request.headers[.init("X-Line-Signature")!], !presented.isEmpty else {
            try await request.refuse("X-Line-Signature is missing; LINE signs every webhook it sends.", database: database, logger: logger)
        }
        let expected = settings.lineChannelSecrets.map { WebhookSignature.line(body: request.body, channelSecret: $0) }
        guard WebhookSignature.matches(presented, anyOf: expected) else {
            try await request.refuse("X-Line-Signature does not match the body under any configured channel secret.", database: database, logger: logger)
        }
    }

    /// One event, in the webhook's transaction. The event's row in `provider_events` is what makes a
    /// redelivery (even one running concurrently: it waits on the row) a duplicate.
    private func take(_ event: Event, payloadID: UUID, on connection: PostgresConnection) async throws -> WebhookEventResult {
        guard let eventID = event.webhookEventId, !eventID.isEmpty, eventID.count <= 200 else {
            return .init(_type: event.type, result: .ignored, detail: "The event has no webhookEventId.")
        }
        let rows = try await connection.query("""
            INSERT INTO provider_events (provider, event_id, event_type, inbound_payload_id)
            VALUES ('line', \(eventID), \(String(event.type.prefix(100))), \(payloadID))
            ON CONFLICT (provider, event_id) DO NOTHING
            RETURNING event_id
            """, logger: logger)
        var isNew = false
        for try await _ in rows { isNew = true }
        guard isNew else { return try await duplicate(eventID: eventID, type: event.type, on: connection) }

        let userID = event.source?.userId
        switch event.type {
        case "message":
            guard let message = event.message else { return .init(eventId: eventID, _type: event.type, result: .ignored, detail: "No message object.") }
            let taken = try await chat.take(inboundChat(event, message: message), payloadID: payloadID, on: connection)
            try await connection.query(
                "UPDATE provider_events SET message_id = \(taken.messageID) WHERE provider = 'line' AND event_id = \(eventID)", logger: logger)
            return .init(eventId: eventID, _type: event.type, result: .taken, inbound: taken.outcome)
        case "follow", "unfollow":
            guard let userID else { return .init(eventId: eventID, _type: event.type, result: .ignored, detail: "No user id in the source.") }
            let customer = try await IdentityResolver(logger: logger).resolve(kind: .line, value: userID, rawValue: userID, displayName: nil, on: connection)
            let blocked = event.type == "unfollow"
            // An unfollowing user has blocked the account: nothing we push reaches them until they follow again.
            try await connection.query("""
                UPDATE customer_identities
                SET undeliverable_at = CASE WHEN \(blocked) THEN now() END,
                    undeliverable_reason = CASE WHEN \(blocked) THEN 'LINE: the user unfollowed (blocked) the account' END
                WHERE kind = 'line' AND value = \(userID)
                """, logger: logger)
            try await EventStore(logger: logger).record(
                blocked ? "customer.unfollowed" : "customer.followed", customerID: customer.customerID, actor: nil,
                data: ["provider": "line", "user_id": userID], on: connection)
            return .init(eventId: eventID, _type: event.type, result: .recorded, detail: blocked ? "The LINE identity is marked undeliverable." : nil)
        case "postback":
            guard let userID else { return .init(eventId: eventID, _type: event.type, result: .ignored, detail: "No user id in the source.") }
            let customer = try await IdentityResolver(logger: logger).resolve(kind: .line, value: userID, rawValue: userID, displayName: nil, on: connection)
            try await EventStore(logger: logger).record(
                "chat.postback", customerID: customer.customerID, actor: nil,
                data: ["provider": "line", "user_id": userID, "data": event.postback?.data ?? ""], on: connection)
            return .init(eventId: eventID, _type: event.type, result: .recorded)
        case "unsend":
            guard let messageID = event.unsend?.messageId else { return .init(eventId: eventID, _type: event.type, result: .ignored) }
            let rows = try await connection.query("""
                UPDATE messages SET metadata = metadata || jsonb_build_object('unsent_at', now())
                WHERE channel = 'chat' AND direction = 'inbound' AND provider = 'line' AND provider_message_id = \(messageID)
                RETURNING id, ticket_id, customer_id
                """, logger: logger)
            for try await (id, ticketID, customerID) in rows.decode((UUID, UUID, UUID?).self) {
                try await EventStore(logger: logger).record(
                    "message.unsent", ticketID: ticketID, customerID: customerID, messageID: id, actor: nil, data: ["provider": "line"], on: connection)
                return .init(eventId: eventID, _type: event.type, result: .recorded, detail: "The customer withdrew the message.")
            }
            return .init(eventId: eventID, _type: event.type, result: .noMatchingMessage)
        default:
            return .init(eventId: eventID, _type: event.type, result: .ignored, detail: "Madoguchi does not act on LINE '\(event.type)' events.")
        }
    }

    private func duplicate(eventID: String, type: String, on connection: PostgresConnection) async throws -> WebhookEventResult {
        var result = WebhookEventResult(eventId: eventID, _type: type, result: .duplicate, detail: "Taken from an earlier delivery of this event.")
        let rows = try await connection.query(
            "SELECT message_id FROM provider_events WHERE provider = 'line' AND event_id = \(eventID)", logger: logger)
        for try await messageID in rows.decode(UUID?.self) {
            if let messageID { result.inbound = try await answer(forMessage: messageID, on: connection) }
        }
        return result
    }

    /// Where an earlier delivery's message went, as the ingest answered it then (the ticket's status as it is now).
    private func answer(forMessage messageID: UUID, on connection: PostgresConnection) async throws -> Components.Schemas.InboundResult? {
        let rows = try await connection.query("""
            SELECT m.inbound_payload_id, m.customer_id, m.threading_reason, t.id, t.number, t.customer_id, t.status
            FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE m.id = \(messageID)
            """, logger: logger)
        for try await (payloadID, customerID, reason, ticketID, number, ticketCustomer, status) in
            rows.decode((UUID?, UUID?, String?, UUID, Int64, UUID, String).self) {
            var outcome = Components.Schemas.InboundResult(inboundId: (payloadID ?? messageID).resourceID, channel: .chat, parseStatus: .parsed)
            outcome.classification = .customer
            outcome.took(message: messageID, on: .init(id: ticketID, number: number, customerID: ticketCustomer, status: try Ticket.enumeration(status)),
                         customerID: customerID ?? ticketCustomer)
            outcome.threadingReason = reason
            return outcome
        }
        return nil
    }

    /// A message event as the chat ingest takes it: text as text; stickers and locations described;
    /// media kept as references to LINE's content, which only the channel access token can fetch.
    private func inboundChat(_ event: Event, message: Message) -> InboundChat {
        let source = event.source
        let conversation = source?.groupId ?? source?.roomId ?? source?.userId ?? "unknown"
        var details: [String: String] = ["line_message_type": message.type, "source_type": source?.type ?? ""]
        if let mode = event.mode { details["mode"] = mode }
        var links: [[String: String]] = []
        let text: String
        switch message.type {
        case "text":
            text = message.text ?? ""
        case "sticker":
            text = "[sticker" + (message.keywords.map { ": " + $0.prefix(3).joined(separator: ", ") } ?? "") + "]"
            details["sticker"] = "\(message.packageId ?? "")/\(message.stickerId ?? "")"
        case "location":
            text = [message.title, message.address, message.latitude.flatMap { lat in message.longitude.map { "(\(lat), \($0))" } }]
                .compactMap { $0 }.joined(separator: "\n")
        case "image", "video", "audio", "file":
            text = "[\(message.type)" + (message.fileName.map { ": \($0)" } ?? "") + "]"
            details["line_content_id"] = message.id
            if let url = message.contentProvider?.originalContentUrl {
                links.append(["url": url, "media_type": message.type, "filename": message.fileName ?? message.type])
            }
        default:
            text = "[\(message.type)]"
        }
        // A group member who has not consented to share their id is known only by the group: the group
        // then stands for the customer, rather than a new anonymous customer per message.
        let contacts: [(kind: Customer.Identity.Kind, value: String)] =
            if let userID = source?.userId { [(.line, userID)] } else if source?.type == "group" || source?.type == "room" { [(.chat, "line:\(conversation)")] } else { [] }
        return InboundChat(
            provider: "line", conversationID: conversation, providerMessageID: message.id, senderUserID: source?.userId ?? "",
            contacts: contacts, name: nil, text: String(text.prefix(20_000)), links: links,
            sentAt: event.timestamp.map { Date(timeIntervalSince1970: Double($0) / 1000) }, details: details)
    }

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

    // The parts of LINE's webhook this service reads; everything else stays in the stored payload.
    struct Payload: Decodable {
        var destination: String?
        var events: [Event]
    }

    struct Event: Decodable {
        var type: String
        var mode: String?
        var timestamp: Int64?
        var webhookEventId: String?
        var source: Source?
        var message: Message?
        var postback: Postback?
        var unsend: Unsend?
    }

    struct Source: Decodable {
        var type: String
        var userId: String?
        var groupId: String?
        var roomId: String?
    }

    struct Message: Decodable {
        var id: String
        var type: String
        var text: String?
        var fileName: String?
        var title: String?
        var address: String?
        var latitude: Double?
        var longitude: Double?
        var packageId: String?
        var stickerId: String?
        var keywords: [String]?
        var contentProvider: ContentProvider?
    }

    struct ContentProvider: Decodable {
        var type: String
        var originalContentUrl: String?
    }

    struct Postback: Decodable {
        var data: String
    }

    struct Unsend: Decodable {
        var messageId: String
    }
}
