import Foundation
import Logging
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

    struct Sender: Sendable {
        var value: String
        /// False for short codes and alphanumeric senders, kept as sent.
        var isPhoneNumber: Bool
    }

    static func validate(_ sms: InboundSms) throws -> Sender {
        var errors: [Problem.FieldError] = []
        if !IdentityValue.isProviderName(sms.provider) {
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

    /// Validates, stores the raw request and takes the message in, in one transaction; a message
    /// taken in before gets its first answer.
    func ingest(_ sms: InboundSms, raw: [UInt8], contentType: String, idempotencyKey: String?, apiKeyID: UUID?) async throws -> IngestAnswer {
        let sender = try Self.validate(sms)
        return try await GatewayIngest(database: database, logger: logger).ingest(.init(
            channel: .sms, provider: sms.provider, providerMessageID: sms.providerMessageID, idempotencyKey: idempotencyKey,
            // The text is compared too: a gateway whose ids are counters (per conversation, or started
            // again) reused one for a new text, which was answered as a retry and never stored.
            body: raw, contentType: contentType, apiKeyID: apiKeyID, senderIdentities: [(.phone, sender.value)], text: sms.body)
        ) { payloadID, ownersRead, connection in
            try await take(sms, from: sender, payloadID: payloadID, identitiesLocked: true, ownersRead: ownersRead, on: connection)
        }
    }

    /// Writes the message of a stored payload (the caller's transaction, which records the answer):
    /// the sender's customer, their ongoing SMS conversation or a new ticket, the message, its event.
    /// `identitiesLocked`: the caller holds the sender's identity lock (and `ownersRead` has its
    /// owner when the caller read it under the lock).
    func take(
        _ sms: InboundSms, from sender: Sender, payloadID: UUID, identitiesLocked: Bool = false, ownersRead: IdentityStore.OwnersRead = .none,
        on connection: PostgresConnection
    ) async throws -> (messageID: UUID, outcome: InboundOutcome) {
        var metadata: [String: Any] = sms.details
        metadata["to"] = sms.to ?? ""
        metadata["sender_is_phone_number"] = sender.isPhoneNumber
        if !sms.links.isEmpty { metadata["links"] = sms.links }
        let message = CustomerMessage(
            channel: .sms, provider: sms.provider, providerMessageID: sms.providerMessageID,
            sender: .identity(kind: .phone, value: sender.value, raw: sms.from), senderName: nil, from: sender.value,
            to: sms.to.map { [$0] } ?? [], text: sms.body, metadata: try JSONSerialization.text(metadata), sentAt: sms.receivedAt,
            flags: sender.isPhoneNumber ? [] : ["unverified-sender"], eventDetails: ["provider": sms.provider])
        let window = conversationWindow
        return try await ConversationIntake(logger: logger).take(
            message, placement: .continuing(reason: "sms-conversation") { customerID, connection in
                try await Self.ongoingConversation(customerID: customerID, window: window, logger: logger, on: connection)
            }, payloadID: payloadID, identitiesLocked: identitiesLocked, ownersRead: ownersRead, on: connection)
    }

    /// The customer's most recent SMS ticket where either side wrote within the window (closed
    /// included, so a message after closing starts a linked ticket rather than an unrelated one): a
    /// text answering ours of yesterday continues that ticket, however long ago the customer last wrote.
    /// A ticket of another channel we texted them from counts too, by its texts alone: an agent who
    /// answered a bounced mail by SMS gets the customer's answer on that ticket, not on a new one
    /// nobody knows the story of.
    /// A ticket merged into another lives on in it: the conversation there keeps it current (the
    /// intake then follows it there), so texting on after a merge never starts a ticket of its own.
    private static func ongoingConversation(customerID: UUID, window: Duration, logger: Logger, on connection: PostgresConnection) async throws -> UUID? {
        try await connection.rows("""
            SELECT t.id FROM tickets t
            LEFT JOIN tickets survivor ON survivor.id = t.merged_into
            CROSS JOIN LATERAL (
                SELECT max(m.created_at) FILTER (WHERE m.direction = 'outbound') AS answered,
                       max(m.created_at) FILTER (WHERE m.channel = 'sms') AS texted
                FROM messages m
                WHERE m.ticket_id IN (t.id, survivor.id) AND (m.direction = 'outbound' OR m.channel = 'sms')
            ) AS ours
            CROSS JOIN LATERAL (
                SELECT CASE WHEN t.channel = 'sms'
                            THEN greatest(coalesce(t.last_customer_message_at, t.created_at), survivor.last_customer_message_at, ours.answered)
                            ELSE ours.texted END AS at
            ) AS last
            WHERE t.customer_id = \(customerID) AND (t.channel = 'sms' OR ours.texted IS NOT NULL)
              AND last.at > now() - make_interval(secs => \(window.seconds)::float8)
            ORDER BY last.at DESC
            LIMIT 1
            """, preparedAs: OngoingConversation.self, logger: logger).first.map { try $0.decode(UUID.self) }
    }

    /// Every text from a known customer asks.
    private enum OngoingConversation: PreparedSite { static let name = "madoguchi_sms_ongoing_conversation" }
}
