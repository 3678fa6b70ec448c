import Foundation
import Logging
import PostgresNIO

/// A provider's report on a text message we sent.
struct SmsDeliveryReport: Sendable {
    var provider: String
    var providerMessageID: String
    /// The provider's word, lower-cased: Twilio `queued`/`sent`/`delivered`/`undelivered`/`failed`/`read`,
    /// Vonage `accepted`/`buffered`/`delivered`/`expired`/`failed`/`rejected`/`unknown`.
    var status: String
    var errorCode: String?
    var recipient: String?

    /// How far along a message is: a report never moves it back (providers' callbacks race each other).
    var stage: Int {
        switch status {
        case "accepted", "queued", "sending", "buffered", "scheduled", "unknown": 1
        case "sent": 2
        case "delivered", "undelivered", "failed", "expired", "rejected", "canceled": 3
        case "read": 4
        default: 0
        }
    }

    var isFailure: Bool { ["undelivered", "failed", "expired", "rejected"].contains(status) }
}

/// Applies delivery reports to our outbound messages, keeping every report's request.
struct SmsDeliveryReports: Sendable {
    let database: Database
    let logger: Logger

    func apply(_ report: SmsDeliveryReport, request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            let payloadID = try await payloads.insert(
                channel: .sms, provider: report.provider, idempotencyKey: nil, body: request.body, contentType: request.contentType,
                apiKeyID: nil, on: connection)
            var event = ProviderEventAnswer(eventID: report.providerMessageID, type: "status", result: .noMatchingMessage)
            var messageID: UUID?
            if let (id, ticketID, currentStatus) = try await MessageStore(logger: logger).lockOutbound(
                provider: report.provider, providerMessageID: report.providerMessageID, on: connection) {
                messageID = id
                let current = SmsDeliveryReport(provider: report.provider, providerMessageID: report.providerMessageID, status: currentStatus ?? "")
                event.result = .recorded
                if let currentStatus, currentStatus == report.status {
                    event.detail = "The message was already '\(currentStatus)'."
                } else if let currentStatus, report.stage <= current.stage {
                    event.detail = "Kept '\(currentStatus)': '\(report.status)' is no later stage, so it was reported late."
                } else {
                    try await record(report, messageID: id, ticketID: ticketID, on: connection)
                    event.detail = "The message is now '\(report.status)'."
                }
            } else {
                event.detail = "No message was sent through \(report.provider) with id \(report.providerMessageID)."
            }
            let result = ProviderWebhookAnswer(inboundID: payloadID, provider: report.provider, events: [event])
            try await payloads.finish(payloadID, providerMessageID: report.providerMessageID, answer: .webhook(result), messageID: messageID, on: connection)
            return result
        }
    }

    private func record(_ report: SmsDeliveryReport, messageID: UUID, ticketID: UUID, on connection: PostgresConnection) async throws {
        var delivery: [String: Any] = ["status": report.status, "updated_at": Date().rfc3339UTC]
        if let code = report.errorCode, !code.isEmpty, code != "0" { delivery["error_code"] = code }
        try await MessageStore(logger: logger).setDelivery(try JSONSerialization.text(delivery), of: messageID, on: connection)
        try await EventStore(logger: logger).record(
            report.isFailure ? .messageDeliveryFailed : .messageDeliveryUpdated, ticketID: ticketID, messageID: messageID, actor: nil,
            data: delivery.merging(["provider": report.provider], uniquingKeysWith: { first, _ in first }), on: connection)
    }
}
