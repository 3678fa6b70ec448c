import Foundation
import Logging
import PostgresNIO

/// The transaction every gateway's message runs in (web form, SMS, chat, and the providers' webhooks
/// that carry one message): a replayed `Idempotency-Key` or provider message id answers with the
/// first answer; otherwise the raw body is stored, `take` writes what it makes of it, and the answer
/// is recorded with the payload — all committed together, so nothing is lost or doubled.
struct GatewayIngest: Sendable {
    let database: Database
    let logger: Logger

    struct Delivery: Sendable {
        var channel: Channel
        var provider: String
        var providerMessageID: String
        var idempotencyKey: String?
        var body: [UInt8]
        var contentType: String = "application/json"
        var apiKeyID: UUID?
        /// The sender's identities when the request names them: their locks are taken with the
        /// payload's insert and their owners read with the replay lookup; `take` hands both facts
        /// to the intake (`identitiesLocked`, `ownersRead`).
        var senderIdentities: [(kind: Customer.Identity.Kind, value: String)] = []
        /// The sender as the message records it (`from`), when `senderIdentities` does not name it:
        /// compared, not locked, to tell a reused message id from a retry.
        var sender: String?
        /// What the customer wrote, as the message keeps it (`visible_text`), where a gateway assigns
        /// the ids (a web form's submission id, a chat or SMS gateway's message id): compared with the
        /// first message's, so that a reused id with other words is refused rather than answered as a
        /// retry and lost.
        var text: String?
    }

    func ingest(
        _ delivery: Delivery,
        take: (_ payloadID: UUID, _ ownersRead: IdentityStore.OwnersRead, _ connection: PostgresConnection) async throws
            -> (messageID: UUID, outcome: InboundOutcome)
    ) async throws -> IngestAnswer {
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            switch try await payloads.open(
                channel: delivery.channel, provider: delivery.provider, providerMessageID: delivery.providerMessageID,
                idempotencyKey: delivery.idempotencyKey, body: delivery.body, contentType: delivery.contentType, apiKeyID: delivery.apiKeyID,
                senderIdentities: delivery.senderIdentities, sender: delivery.sender, text: delivery.text, on: connection) {
            case .replay(let outcome):
                return .replayed(outcome)
            case .fresh(let payloadID, let owners):
                let taken = try await take(payloadID, owners, connection)
                try await payloads.finish(payloadID, providerMessageID: delivery.providerMessageID, answer: .ingest(.taken(taken.outcome)),
                                          messageID: taken.messageID, on: connection)
                return .taken(taken.outcome)
            }
        }
    }
}
