import Foundation
import Logging
import MadoguchiAPI
import PostgresNIO

/// Takes one text message in: stored as received, the sender resolved to a customer by phone number,
/// and the message added to that customer's ongoing SMS conversation or a new ticket — one
/// transaction.
struct SmsIngest: Sendable {
    let database: Database
    let logger: Logger
    /// How long after the customer's last message a new one still continues the conversation.
    let conversationWindow: Duration

    typealias Outcome = Components.Schemas.InboundResult
    typealias Sms = Components.Schemas.SmsMessage

    struct Sender: Sendable {
        var value: String
        /// False for short codes and alphanumeric senders, kept as sent.
        var isPhoneNumber: Bool
    }

    static func validate(_ sms: Sms) throws -> Sender {
        var errors: [Problem.FieldError] = []
        if sms.provider.range(of: #"^[a-z0-9_.-]{1,100}$"#, options: .regularExpression) == nil {
            errors.append(.init(pointer: "/provider", message: "is not a lower-case provider name like 'twilio'"))
        }
        for (field, text, limit) in [("/provider_message_id", sms.providerMessageId, 200), ("/from", sms.from, 64), ("/to", sms.to ?? "", 64),
                                     ("/body", sms.body, 10_000)] {
            if text.contains("\u{0}") { errors.append(.init(pointer: field, message: "contains a NUL character")) }
            if text.count > limit { errors.append(.init(pointer: field, message: "is longer than \(limit) characters")) }
        }
        let from = sms.from.trimmingCharacters(in: .whitespacesAndNewlines)
        if from.isEmpty { errors.append(.init(pointer: "/from", message: "is blank")) }
        if sms.providerMessageId.trimmingCharacters(in: .whitespaces).isEmpty { errors.append(.init(pointer: "/provider_message_id", message: "is blank")) }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }
        if case .valid(let e164) = PhoneNumber.normalize(from) { return Sender(value: e164, isPhoneNumber: true) }
        return Sender(value: from, isPhoneNumber: false)
    }

    func ingest(_ sms: Sms, raw: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> (status: Int, outcome: Outcome) {
        let sender = try Self.validate(sms)
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            let payloadID: UUID
            switch try await payloads.open(
                channel: .sms, provider: sms.provider, providerMessageID: sms.providerMessageId, idempotencyKey: idempotencyKey,
                body: raw, apiKeyID: apiKeyID, on: connection) {
            case .replay(let outcome): return (200, outcome)
            case .fresh(let id): payloadID = id
            }

            let customer = try await IdentityResolver(logger: logger).resolve(
                kind: .phone, value: sender.value, rawValue: sms.from, displayName: nil, on: connection)
            let intake = TicketIntake(logger: logger)
            var reason = "sms-conversation"
            var ticket: TicketIntake.Target?
            var related: UUID?
            if let ongoing = try await ongoingConversation(customerID: customer.customerID, on: connection),
               let locked = try await intake.lock(ongoing, on: connection) {
                if locked.status == .closed { related = locked.id } else { ticket = locked }
            }
            if ticket == nil {
                reason = related == nil ? "new-ticket" : "reopened-closed"
                let subject = String(sms.body.split(separator: "\n").first?.prefix(60) ?? "SMS")
                ticket = try await intake.open(customerID: customer.customerID, channel: .sms, subject: subject.isEmpty ? "SMS" : subject,
                                               body: sms.body, relatedTo: related, on: connection)
            }
            guard var ticket else { throw Problem.internalError }
            let metadata = String(decoding: try JSONSerialization.data(withJSONObject: [
                "to": sms.to ?? "", "sender_is_phone_number": sender.isPhoneNumber,
            ], options: [.sortedKeys]), as: UTF8.self)
            let rows = try await connection.query("""
                INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, inbound_payload_id, provider, provider_message_id,
                                      from_address, to_addresses, body_text, visible_text, threading_reason, metadata, sent_at)
                VALUES (\(ticket.id), 'inbound', 'sms', 'customer', \(customer.customerID), \(payloadID), \(sms.provider), \(sms.providerMessageId),
                        \(sender.value), \(sms.to.map { [$0] } ?? []), \(sms.body), \(sms.body), \(reason), \(metadata)::jsonb, \(sms.receivedAt))
                RETURNING id
                """, logger: logger)
            var created: UUID?
            for try await id in rows.decode(UUID.self) { created = id }
            guard let messageID = created else { throw Problem.internalError }
            if ticket.status != .new { ticket.status = try await intake.customerWrote(on: ticket, on: connection) }
            try await EventStore(logger: logger).record(
                "message.received", ticketID: ticket.id, customerID: customer.customerID, messageID: messageID, actor: nil,
                data: ["channel": "sms", "provider": sms.provider, "threading": reason], on: connection)

            var outcome = Outcome(inboundId: payloadID.resourceID, channel: .sms, parseStatus: .parsed)
            outcome.classification = .customer
            outcome.took(message: messageID, on: ticket, customerID: customer.customerID)
            outcome.threadingReason = reason
            outcome.flags = sender.isPhoneNumber ? nil : ["unverified-sender"]
            try await payloads.finish(payloadID, providerMessageID: sms.providerMessageId, parseError: nil, responseStatus: 201,
                                      outcome: outcome, messageID: messageID, on: connection)
            return (201, outcome)
        }
    }

    /// The customer's most recent SMS ticket they wrote on within the window (closed included, so a
    /// message after closing starts a linked ticket rather than an unrelated one).
    private func ongoingConversation(customerID: UUID, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT id FROM tickets
            WHERE customer_id = \(customerID) AND channel = 'sms'
              AND coalesce(last_customer_message_at, created_at) > now() - make_interval(secs => \(Double(conversationWindow.components.seconds)))
            ORDER BY coalesce(last_customer_message_at, created_at) DESC
            LIMIT 1
            """, logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }
}
