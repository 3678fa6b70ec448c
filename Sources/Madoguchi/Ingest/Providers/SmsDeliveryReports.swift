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

    /// The statuses that say the text did not reach the customer (also read in SQL, by
    /// `TicketStore.answeredSince`).
    static let failureStatuses = ["undelivered", "failed", "expired", "rejected"]

    var isFailure: Bool { Self.failureStatuses.contains(status) }
}

/// Applies delivery reports to our outbound messages, keeping every report's request. Owns
/// `sms_reports_before_send`: reports that came before the send they name was recorded.
struct SmsDeliveryReports: Sendable {
    let database: Database
    let logger: Logger

    /// The longest provider id a send keeps (`ProviderDelivery.storableID`).
    static let longestID = 200

    func apply(_ report: SmsDeliveryReport, request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            let payloadID = try await payloads.insert(
                channel: .sms, provider: report.provider, idempotencyKey: nil, body: request.body, contentType: request.contentType,
                apiKeyID: nil, on: connection)
            // Longer than any id we keep for a send (`ProviderDelivery.storableID`): it names none of
            // ours. Answered 200 and kept as the request; stored as a report waiting for its send, it
            // broke the table's index (a 500), and the provider redelivered it for days.
            guard report.providerMessageID.count <= Self.longestID else {
                let event = ProviderEventAnswer(eventID: String(report.providerMessageID.prefix(Self.longestID)), type: "status", result: .noMatchingMessage,
                                                detail: "The message id is longer than \(Self.longestID) characters: no message of ours has it.")
                let result = ProviderWebhookAnswer(inboundID: payloadID, provider: report.provider, events: [event])
                try await payloads.finish(payloadID, providerMessageID: nil, answer: .webhook(result), messageID: nil, on: connection)
                return result
            }
            var event = ProviderEventAnswer(eventID: report.providerMessageID, type: "status", result: .noMatchingMessage)
            var messageID: UUID?
            try await lockProviderID(report.provider, report.providerMessageID, on: connection)
            if let (id, ticketID, currentStatus) = try await MessageStore(logger: logger).lockOutbound(
                provider: report.provider, providerMessageID: report.providerMessageID, on: connection) {
                messageID = id
                event.result = .recorded
                event.detail = try await advance(id, ticketID: ticketID, from: currentStatus, to: report, on: connection)
            } else {
                try await connection.perform("""
                    INSERT INTO sms_reports_before_send (provider, provider_message_id, status, error_code)
                    VALUES (\(report.provider), \(report.providerMessageID), \(report.status), \(report.errorCode))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                event.detail = "No message was sent through \(report.provider) with id \(report.providerMessageID) yet; "
                    + "the report is kept for a day, for a send that is still being recorded."
            }
            let result = ProviderWebhookAnswer(inboundID: payloadID, provider: report.provider, events: [event])
            try await payloads.finish(payloadID, providerMessageID: report.providerMessageID, answer: .webhook(result), messageID: messageID, on: connection)
            return result
        }
    }

    /// A send the worker is recording now (`providerMessageID` just written on `messageID`, with
    /// `status`): reports that came before it are applied, and go. A day's reports that no send
    /// claimed go too. True when one of them failed the reply: the worker then records no delivery.
    @discardableResult
    func applyReportsBeforeSend(provider: String, providerMessageID: String, messageID: UUID, ticketID: UUID, status: String,
                                on connection: PostgresConnection) async throws -> Bool {
        try await lockProviderID(provider, providerMessageID, on: connection)
        let rows = try await connection.run("""
            DELETE FROM sms_reports_before_send
            WHERE (provider = \(provider) AND provider_message_id = \(providerMessageID)) OR received_at < now() - interval '1 day'
            RETURNING provider = \(provider) AND provider_message_id = \(providerMessageID), status, error_code
            """, logger: logger)
        var reports: [SmsDeliveryReport] = []
        for try await (ours, status, errorCode) in rows.decode((Bool, String, String?).self) where ours {
            reports.append(SmsDeliveryReport(provider: provider, providerMessageID: providerMessageID, status: status, errorCode: errorCode))
        }
        // The latest stage is what the message has reached; the ones before it add nothing.
        guard let latest = reports.max(by: { $0.stage < $1.stage }) else { return false }
        _ = try await advance(messageID, ticketID: ticketID, from: status, to: latest, on: connection)
        return latest.isFailure
    }

    /// A report and the send it names are written in either order; both sides take this lock first,
    /// so whichever comes second sees the other committed.
    private func lockProviderID(_ provider: String, _ providerMessageID: String, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            SELECT pg_advisory_xact_lock(hashtextextended('sms report ' || \(provider) || ' ' || \(providerMessageID), 0))
            """, logger: logger)
    }

    /// Moves the message on to `report`'s status unless it is already there or further; says which.
    private func advance(_ messageID: UUID, ticketID: UUID, from currentStatus: String?, to report: SmsDeliveryReport,
                         on connection: PostgresConnection) async throws -> String {
        let current = SmsDeliveryReport(provider: report.provider, providerMessageID: report.providerMessageID, status: currentStatus ?? "")
        if let currentStatus, currentStatus == report.status {
            return "The message was already '\(currentStatus)'."
        } else if let currentStatus, report.stage <= current.stage {
            return "Kept '\(currentStatus)': '\(report.status)' is no later stage, so it was reported late."
        }
        try await record(report, messageID: messageID, ticketID: ticketID, on: connection)
        return "The message is now '\(report.status)'."
    }

    /// The reply whose text the provider reports failed is `failed`, as one the provider refused at
    /// once is: its delivery says so, with the customer's other identities, the failed replies' list
    /// holds it, and followers get `reply.failed`. It had stayed `sent` whatever the report said.
    /// A reply already failed or bounced is left as it is. The worker's own `sent` comes before any
    /// report it applies (`applyReportsBeforeSend`, in the same transaction), so never after this.
    /// A failure for good (`permanentFailureCodes`) marks the number undeliverable, as the provider's
    /// refusal at the send does: the next text to it needs `confirm_undeliverable`. Only for a reply
    /// to one number: a reply to several keeps one provider id, which cannot say whose text failed.
    private func failReply(sentAs messageID: UUID, ticketID: UUID, report: SmsDeliveryReport, on connection: PostgresConnection) async throws {
        let failed = try await ReplyStore(logger: logger).markFailed(sentAs: messageID, on: connection)
        let error = "\(report.provider) reported the text \(report.status)"
            + (report.errorCode.flatMap { $0.isEmpty || $0 == "0" ? nil : " (error \($0))" } ?? "")
        for (replyID, attempts, recipients) in failed {
            // On the delivery, each recipient reads `failed` with the provider's words, not the `sent`
            // of the hand-over (`Components.Schemas.ReplyDelivery.init`).
            for recipient in recipients {
                try await OutboxStore(logger: logger).recordNotice(replyID: replyID, recipient: recipient, action: "failed",
                                                                   status: report.errorCode, diagnostic: error, on: connection)
            }
            try await EventStore(logger: logger).record(.replyFailed, reply: replyID, actor: nil, data: [
                "error": error, "attempts": attempts, "refused": recipients.map { ["recipient": $0, "reply": error] },
            ], on: connection)
            guard let code = report.errorCode, Self.permanentFailureCodes[report.provider]?.contains(code) == true,
                  recipients.count == 1, let number = recipients.first else { continue }
            for customerID in try await IdentityStore(logger: logger).markUndeliverable(kind: .phone, value: number, reason: error, on: connection) {
                try await EventStore(logger: logger).record(
                    .identityUndeliverable, ticketID: ticketID, customerID: customerID, actor: nil,
                    data: ["kind": "phone", "value": number, "reason": error, "source": "relay"], on: connection)
            }
        }
    }

    /// Error codes of a delivery report that say the number will never take a text: Twilio's 30005
    /// (unknown destination handset) and 30006 (a landline or an unreachable carrier); Vonage's
    /// err-code 3 (absent subscriber, permanent: the number is no longer active), 4 (barred by its
    /// user) and 9 (the user asked for no messages from this service). 30003 and Vonage's 2 (the
    /// handset off or out of reach), and the carriers' spam filters (30007, Vonage 6), pass.
    static let permanentFailureCodes: [String: Set<String>] = ["twilio": ["30005", "30006"], "vonage": ["3", "4", "9"]]

    private func record(_ report: SmsDeliveryReport, messageID: UUID, ticketID: UUID, on connection: PostgresConnection) async throws {
        if report.isFailure {
            // The text never reached the customer: the ticket is flagged `delivery-failed` (and
            // reopened if solved or pending), as a bounced mail's is, so that someone answers another
            // way; before, a solved ticket stayed solved. The ticket first, as every writer takes it.
            try await TicketStore(logger: logger).withdrawResponse(ofReply: nil, orMessage: messageID, on: connection)
            try await TicketStore(logger: logger).flagDeliveryFailure(ticketID, ofReply: nil, orMessage: messageID, on: connection)
            try await failReply(sentAs: messageID, ticketID: ticketID, report: report, on: connection)
        }
        var delivery: [String: Any] = ["status": report.status, "updated_at": Date().rfc3339UTC]
        if let code = report.errorCode, !code.isEmpty, code != "0" { delivery["error_code"] = code }
        try await MessageStore(logger: logger).setDelivery(try JSONSerialization.text(delivery), of: messageID, on: connection)
        try await EventStore(logger: logger).record(
            report.isFailure ? .messageDeliveryFailed : .messageDeliveryUpdated, ticketID: ticketID, messageID: messageID, actor: nil,
            data: delivery.merging(["provider": report.provider], uniquingKeysWith: { first, _ in first }), on: connection)
    }
}
