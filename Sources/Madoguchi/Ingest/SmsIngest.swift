import Foundation
import Logging
import MadoguchiAPI
import PostgresNIO

/// A text message as every SMS route hands it to ingest, whichever shape its provider sent.
struct InboundSms: Sendable {
    var provider: String
    var providerMessageID: String
    var from: String
    var to: String?
    var body: String
    var receivedAt: Date?
    /// Provider details worth keeping with the message (segment count, keyword…).
    var details: [String: String] = [:]
    /// Media the provider hosts (MMS): kept as links, never fetched.
    var links: [[String: String]] = []
}

/// Takes one text message in: stored as received, the sender resolved to a customer by phone number,
/// and the message added to that customer's ongoing SMS conversation or a new ticket — one
/// transaction.
struct SmsIngest: Sendable {
    let database: Database
    let logger: Logger
    /// How long after the customer's last message a new one still continues the conversation.
    let conversationWindow: Duration

    typealias Outcome = Components.Schemas.InboundResult

    struct Sender: Sendable {
        var value: String
        /// False for short codes and alphanumeric senders, kept as sent.
        var isPhoneNumber: Bool
    }

    static func validate(_ sms: InboundSms) throws -> Sender {
        var errors: [Problem.FieldError] = []
        if sms.provider.range(of: #"^[a-z0-9_.-]{1,100}$"#, options: .regularExpression) == nil {
            errors.append(.init(pointer: "/provider", message: "is not a lower-case provider name like 'twilio'"))
        }
        for (field, text, limit) in [("/provider_message_id", sms.providerMessageID, 200), ("/from", sms.from, 64), ("/to", sms.to ?? "", 64),
                                     ("/body", sms.body, 10_000)] {
            if text.contains("\u{0}") { errors.append(.init(pointer: field, message: "contains a NUL character")) }
            if text.count > limit { errors.append(.init(pointer: field, message: "is longer than \(limit) characters")) }
        }
        let from = sms.from.trimmingCharacters(in: .whitespacesAndNewlines)
        if from.isEmpty { errors.append(.init(pointer: "/from", message: "is blank")) }
        if sms.providerMessageID.trimmingCharacters(in: .whitespaces).isEmpty { errors.append(.init(pointer: "/provider_message_id", message: "is blank")) }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }
        if case .valid(let e164) = PhoneNumber.normalize(from) { return Sender(value: e164, isPhoneNumber: true) }
        return Sender(value: from, isPhoneNumber: false)
    }

    /// Validates, stores the raw request and takes the message in, in one transaction. `200` and the
    /// first answer for a message already taken in.
    func ingest(
        _ sms: InboundSms, raw: [UInt8], contentType: String, idempotencyKey: String?, apiKeyID: UUID?
    ) async throws -> (status: Int, outcome: Outcome) {
        let sender = try Self.validate(sms)
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            switch try await payloads.open(
                channel: .sms, provider: sms.provider, providerMessageID: sms.providerMessageID, idempotencyKey: idempotencyKey,
                body: raw, contentType: contentType, apiKeyID: apiKeyID, on: connection) {
            case .replay(let outcome):
                return (200, outcome)
            case .fresh(let payloadID):
                let taken = try await take(sms, from: sender, payloadID: payloadID, on: connection)
                try await payloads.finish(payloadID, providerMessageID: sms.providerMessageID, parseError: nil, responseStatus: 201,
                                          outcome: taken.outcome, messageID: taken.messageID, on: connection)
                return (201, taken.outcome)
            }
        }
    }

    /// Writes the message of a stored payload (the caller's transaction, which records the answer):
    /// the sender's customer, their ongoing SMS conversation or a new ticket, the message, its event.
    func take(
        _ sms: InboundSms, from sender: Sender, payloadID: UUID, on connection: PostgresConnection
    ) async throws -> (messageID: UUID, outcome: Outcome) {
        let customer = try await IdentityResolver(logger: logger).resolve(
            kind: .phone, value: sender.value, rawValue: sms.from, displayName: nil, on: connection)
        let intake = TicketIntake(logger: logger)
        var (ticket, reason) = try await intake.continueConversation(
            try await ongoingConversation(customerID: customer.customerID, on: connection), reason: "sms-conversation",
            customerID: customer.customerID, channel: .sms, body: sms.body, on: connection)
        var metadata: [String: Any] = sms.details
        metadata["to"] = sms.to ?? ""
        metadata["sender_is_phone_number"] = sender.isPhoneNumber
        if !sms.links.isEmpty { metadata["links"] = sms.links }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys]), as: UTF8.self)
        let rows = try await connection.query("""
            INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, inbound_payload_id, provider, provider_message_id,
                                  from_address, to_addresses, body_text, visible_text, threading_reason, metadata, sent_at)
            VALUES (\(ticket.id), 'inbound', 'sms', 'customer', \(customer.customerID), \(payloadID), \(sms.provider), \(sms.providerMessageID),
                    \(sender.value), \(sms.to.map { [$0] } ?? []), \(sms.body), \(sms.body), \(reason), \(json)::jsonb, \(sms.receivedAt))
            RETURNING id
            """, logger: logger)
        var created: UUID?
        for try await id in rows.decode(UUID.self) { created = id }
        guard let messageID = created else { throw Problem.internalError }
        if ticket.status != .new { ticket.status = try await intake.customerWrote(on: ticket, on: connection) }
        try await EventStore(logger: logger).record(
            .messageReceived, ticketID: ticket.id, customerID: customer.customerID, messageID: messageID, actor: nil,
            data: ["channel": "sms", "provider": sms.provider, "threading": reason], on: connection)

        var outcome = Outcome(inboundId: payloadID.resourceID, channel: .sms, parseStatus: .parsed)
        outcome.classification = .customer
        outcome.took(message: messageID, on: ticket, customerID: customer.customerID)
        outcome.threadingReason = reason
        outcome.flags = sender.isPhoneNumber ? nil : ["unverified-sender"]
        return (messageID, outcome)
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

extension InboundSms {
    /// The provider-neutral JSON shape of `POST /v1/inbound/sms`.
    init(_ sms: Components.Schemas.SmsMessage) {
        self.init(provider: sms.provider, providerMessageID: sms.providerMessageId, from: sms.from, to: sms.to, body: sms.body,
                  receivedAt: sms.receivedAt)
    }
}
