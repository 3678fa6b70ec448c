import Foundation

/// One outbox row a worker has claimed: a sent reply on its way to its recipients.
struct OutboxItem: Sendable {
    var id: UUID
    var replyID: UUID
    var channel: Channel
    var recipients: [String]
    /// The Message-ID fixed when the reply was sent; every attempt carries it.
    var emailMessageID: String
    /// Counting this one.
    var attempts: Int
    /// The composed mail, once the first attempt made it.
    var message: [UInt8]?
    var results: [String: RecipientResult]
    /// Sent with every try of an API that deduplicates on it (LINE).
    var retryKey: UUID
    /// What the reply is written from; nil when the reply is gone.
    var source: ReplySource?
    /// When the row was first tried (this attempt, on the first).
    var firstAttemptAt: Date
    /// The attempts made before a person sent a held row again; those after count toward the limit.
    var attemptsBeforeResend = 0

    /// The attempts that count toward `MADOGUCHI_OUTBOX_MAX_ATTEMPTS`, this one included.
    var attemptsCounted: Int { attempts - attemptsBeforeResend }

    /// Recipients not yet settled: every recipient on the first attempt, the deferred ones after.
    var pendingRecipients: [String] {
        recipients.filter { results[$0].map { $0.status == .pending } ?? true }
    }
}

/// What a reply's message is written from, read with its claim: the text, for every channel; for a
/// mail, its subject, ticket and customer, the customer's latest mail on the ticket (which it answers,
/// read only when the mail is composed now) and whether files go with it.
struct ReplySource: Sendable {
    var body: String
    var subject: String?
    var automatic: Bool
    var ticketNumber: Int64
    var customerName: String?
    var parentID: String?
    var parentReferences: [String]?
    var hasAttachments: Bool
    /// For a chat reply, the conversation the customer last wrote in on the ticket (as the gateway
    /// that pushed it in named it).
    var conversationID: String? = nil
}

/// Where one recipient's delivery stands, with what the relay or provider said.
struct RecipientResult: Codable, Sendable, Equatable {
    enum Status: String, Codable, Sendable {
        case sent, failed, pending
    }

    var status: Status
    var reply: String
    /// Refused for good as an address (SMTP 5.1.x to RCPT, a provider's "no such number"): the
    /// identity is marked undeliverable.
    var undeliverable: Bool = false

    /// `reply` is the relay's or provider's words, stored in jsonb, which refuses NUL: a garbled
    /// answer holding one failed the row's settling every time, and the row was held for a person.
    init(status: Status, reply: String, undeliverable: Bool = false) {
        self.status = status
        self.reply = Text.clean(reply)
        self.undeliverable = undeliverable
    }

    static func sent(_ reply: String) -> RecipientResult { .init(status: .sent, reply: reply) }
    static func pending(_ reply: String) -> RecipientResult { .init(status: .pending, reply: reply) }
    static func failed(_ reply: String, undeliverable: Bool = false) -> RecipientResult { .init(status: .failed, reply: reply, undeliverable: undeliverable) }
}

/// What one attempt came to.
struct DeliveryAttempt: Sendable {
    enum Kind: Sendable {
        /// Recipient results are final or deferred as `recipients` says; the relay or provider answered.
        case answered
        /// The handover may or may not have happened (a crash or timeout after the final dot, a
        /// provider call that got no answer): hold for a person, never resend by ourselves.
        case uncertain
        /// Another worker took the row over before the handover; this one records nothing.
        case abandoned
    }

    var kind: Kind
    var recipients: [String: RecipientResult] = [:]
    /// The relay's answer to the handover (its queue id), or the provider's.
    var response: String?
    var provider: String?
    var providerMessageID: String?
    /// Why nothing (or not everything) went out now.
    var error: String?

    /// The relay's or provider's words are cleaned of NUL here, once: neither a text column nor
    /// `jsonb` stores one, and "250 Ok: queued as \0abc" would fail the delivery's record (its
    /// events, its held reason) on every attempt, a mail the relay took held for a person.
    init(kind: Kind, recipients: [String: RecipientResult] = [:], response: String? = nil, provider: String? = nil,
         providerMessageID: String? = nil, error: String? = nil) {
        self.kind = kind
        self.recipients = recipients
        self.response = response.map(Text.clean)
        self.provider = provider
        self.providerMessageID = providerMessageID.map(Text.clean)
        self.error = error.map(Text.clean)
    }

    static func answered(_ recipients: [String: RecipientResult], response: String? = nil, provider: String? = nil, providerMessageID: String? = nil,
                         error: String? = nil) -> DeliveryAttempt {
        DeliveryAttempt(kind: .answered, recipients: recipients, response: response, provider: provider, providerMessageID: providerMessageID, error: error)
    }

    /// Every pending recipient deferred with `reason` (nothing was handed over).
    static func deferred(_ item: OutboxItem, _ reason: String) -> DeliveryAttempt {
        .answered(Dictionary(uniqueKeysWithValues: item.pendingRecipients.map { ($0, .pending(reason)) }), error: reason)
    }

    /// Every pending recipient refused for good with `reason`.
    static func refused(_ item: OutboxItem, _ reason: String, undeliverable: Bool = false) -> DeliveryAttempt {
        .answered(Dictionary(uniqueKeysWithValues: item.pendingRecipients.map { ($0, .failed(reason, undeliverable: undeliverable)) }), error: reason)
    }

    /// Held for a person; `settled`: the recipients this attempt already settled (an SMS to several
    /// numbers whose last request got no answer), kept so that a resend sends to none of them again.
    static func uncertain(_ reason: String, settled: [String: RecipientResult] = [:]) -> DeliveryAttempt {
        DeliveryAttempt(kind: .uncertain, recipients: settled, error: reason)
    }
}
