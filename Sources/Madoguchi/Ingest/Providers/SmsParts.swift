import Foundation
import Logging
import MadoguchiAPI
import PostgresNIO

/// Long texts some providers deliver as separate parts (Vonage: `concat-ref`, `concat-part`,
/// `concat-total`). Each part is stored as it comes; the one that completes the set makes one
/// message of all of them, in part order. Parts older than a day are not waited for.
struct SmsParts: Sendable {
    let database: Database
    let logger: Logger
    let sms: SmsIngest

    struct Part: Sendable {
        var reference: String
        var number: Int
        var count: Int
    }

    func receive(_ message: InboundSms, sender: SmsIngest.Sender, part: Part, request: WebhookRequest) async throws -> WebhookResult {
        let payloads = InboundPayloadStore(logger: logger)
        let (inboundID, event) = try await database.withTransaction { connection -> (Components.Schemas.Identifier, WebhookEventResult) in
            let payloadID: UUID
            switch try await payloads.open(
                channel: .sms, provider: message.provider, providerMessageID: message.providerMessageID, idempotencyKey: nil,
                body: request.body, contentType: request.contentType ?? "", apiKeyID: nil, on: connection) {
            case .replay(let outcome):
                return (outcome.inboundId, .init(eventID: message.providerMessageID, type: "message", status: 200, outcome: outcome))
            case .fresh(let id):
                payloadID = id
            }
            try await AdvisoryLock.take("sms-parts:\(message.provider):\(sender.value):\(part.reference)", on: connection, logger: logger)
            try await connection.query("""
                INSERT INTO sms_parts (provider, provider_message_id, sender, reference, part_count, part_number, body, inbound_payload_id)
                VALUES (\(message.provider), \(message.providerMessageID), \(sender.value), \(part.reference), \(part.count), \(part.number),
                        \(message.body), \(payloadID))
                ON CONFLICT (provider, provider_message_id) DO NOTHING
                """, logger: logger)
            // A retry of a part whose message was already assembled gets that message's answer.
            if let assembled = try await assembledMessage(of: message, on: connection),
               let answer = try await payloads.answer(forMessage: assembled, on: connection) {
                try await payloads.finish(payloadID, providerMessageID: message.providerMessageID, parseError: nil, responseStatus: 200,
                                          outcome: answer, messageID: assembled, on: connection)
                return (payloadID.resourceID, .init(eventID: message.providerMessageID, type: "message", status: 200, outcome: answer))
            }
            let waiting = try await waitingParts(sender: sender.value, provider: message.provider, part: part, on: connection)
            guard Set(waiting.map(\.number)).count == part.count else {
                var outcome = Components.Schemas.InboundResult(inboundId: payloadID.resourceID, channel: .sms, parseStatus: .parsed)
                outcome.flags = ["waiting-for-parts"]
                try await payloads.finish(payloadID, providerMessageID: message.providerMessageID, parseError: nil, responseStatus: 202,
                                          outcome: outcome, messageID: nil, on: connection)
                return (payloadID.resourceID, WebhookEventResult(
                    eventId: message.providerMessageID, _type: "message", result: .waitingForParts,
                    detail: "Part \(part.number) of \(part.count) kept; \(Set(waiting.map(\.number)).count) of \(part.count) have arrived."))
            }
            // One of each part number, in order (a provider resending a part under a new id repeats it).
            var whole = message
            var seen = Set<Int>()
            whole.body = waiting.filter { seen.insert($0.number).inserted }.map(\.body).joined()
            whole.providerMessageID = waiting.first { $0.number == 1 }?.providerMessageID ?? message.providerMessageID
            whole.details["parts"] = String(part.count)
            whole.details["concat_ref"] = part.reference
            let taken = try await sms.take(whole, from: sender, payloadID: payloadID, on: connection)
            try await connection.query("""
                UPDATE sms_parts SET message_id = \(taken.messageID)
                WHERE provider = \(message.provider) AND sender = \(sender.value) AND reference = \(part.reference)
                  AND part_count = \(part.count) AND message_id IS NULL
                """, logger: logger)
            try await payloads.finish(payloadID, providerMessageID: message.providerMessageID, parseError: nil, responseStatus: 201,
                                      outcome: taken.outcome, messageID: taken.messageID, on: connection)
            return (payloadID.resourceID, .init(eventID: message.providerMessageID, type: "message", status: 201, outcome: taken.outcome))
        }
        return WebhookResult(inboundId: inboundID, provider: message.provider, events: [event])
    }

    private func assembledMessage(of message: InboundSms, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT message_id FROM sms_parts WHERE provider = \(message.provider) AND provider_message_id = \(message.providerMessageID)
            """, logger: logger)
        for try await id in rows.decode(UUID?.self) { return id }
        return nil
    }

    private func waitingParts(
        sender: String, provider: String, part: Part, on connection: PostgresConnection
    ) async throws -> [(number: Int, body: String, providerMessageID: String)] {
        let rows = try await connection.query("""
            SELECT part_number, body, provider_message_id FROM sms_parts
            WHERE provider = \(provider) AND sender = \(sender) AND reference = \(part.reference) AND part_count = \(part.count)
              AND message_id IS NULL AND received_at > now() - interval '1 day'
            ORDER BY part_number, received_at
            """, logger: logger)
        var parts: [(Int, String, String)] = []
        for try await (number, body, id) in rows.decode((Int, String, String).self) { parts.append((number, body, id)) }
        return parts
    }
}
