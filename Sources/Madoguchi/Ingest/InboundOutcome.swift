import Foundation

/// What ingest made of one payload. It is stored with the payload (as JSON in the shape openapi's
/// `InboundResult` documents) and given again, unchanged, to every retry of the same delivery.
struct InboundOutcome: Codable, Sendable, Equatable {
    enum ParseStatus: String, Codable, Sendable {
        case parsed, failed
    }

    struct BouncedRecipient: Codable, Sendable, Equatable {
        var address: String
        var action: String
        var status: String?
        var reason: String
        /// A permanent failure: the identity was marked undeliverable.
        var hard: Bool
    }

    var inboundID: UUID
    var channel: Channel
    var parseStatus: ParseStatus
    var parseError: String?
    var classification: Message.Classification?
    var messageID: UUID?
    var ticketID: UUID?
    var ticketNumber: Int64?
    var customerID: UUID?
    var threadingReason: String?
    var ticketStatus: Ticket.Status?
    var bouncedRecipients: [BouncedRecipient]?
    var defects: [String]?
    var flags: [String]?

    init(inboundID: UUID, channel: Channel, parseStatus: ParseStatus = .parsed) {
        self.inboundID = inboundID
        self.channel = channel
        self.parseStatus = parseStatus
    }

    /// Records where the payload's message went.
    mutating func took(message messageID: UUID, on ticket: ConversationIntake.Target, customerID: UUID) {
        self.messageID = messageID
        ticketID = ticket.id
        ticketNumber = ticket.number
        self.customerID = customerID
        ticketStatus = ticket.status
    }

    enum CodingKeys: String, CodingKey {
        case inboundID = "inbound_id", channel, parseStatus = "parse_status", parseError = "parse_error", classification
        case messageID = "message_id", ticketID = "ticket_id", ticketNumber = "ticket_number", customerID = "customer_id"
        case threadingReason = "threading_reason", ticketStatus = "ticket_status", bouncedRecipients = "bounced_recipients"
        case defects, flags
    }

    // Ids are written lower-case, as the API writes them (Foundation's UUID encodes upper-case);
    // decoding takes either.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(inboundID.lowercased, forKey: .inboundID)
        try container.encode(channel, forKey: .channel)
        try container.encode(parseStatus, forKey: .parseStatus)
        try container.encodeIfPresent(parseError, forKey: .parseError)
        try container.encodeIfPresent(classification, forKey: .classification)
        try container.encodeIfPresent(messageID?.lowercased, forKey: .messageID)
        try container.encodeIfPresent(ticketID?.lowercased, forKey: .ticketID)
        try container.encodeIfPresent(ticketNumber, forKey: .ticketNumber)
        try container.encodeIfPresent(customerID?.lowercased, forKey: .customerID)
        try container.encodeIfPresent(threadingReason, forKey: .threadingReason)
        try container.encodeIfPresent(ticketStatus, forKey: .ticketStatus)
        try container.encodeIfPresent(bouncedRecipients, forKey: .bouncedRecipients)
        try container.encodeIfPresent(defects, forKey: .defects)
        try container.encodeIfPresent(flags, forKey: .flags)
    }
}

/// How ingest answered a payload; the API layer turns each case into its status code.
enum IngestAnswer: Sendable {
    /// Taken in now: a new message, or a report kept without one.
    case taken(InboundOutcome)
    /// Taken in before (the same key, provider message id or Message-ID): the first answer again.
    case replayed(InboundOutcome)
    /// Stored byte for byte but not readable as what it claims to be; the outcome says why.
    case keptUnreadable(InboundOutcome)

    var outcome: InboundOutcome {
        switch self {
        case .taken(let outcome), .replayed(let outcome), .keptUnreadable(let outcome): outcome
        }
    }
}

/// What a provider's webhook request became, event by event (LINE sends several per request, SMS
/// providers one). Stored with the request like an `InboundOutcome`.
struct ProviderWebhookAnswer: Codable, Sendable, Equatable {
    var inboundID: UUID
    var provider: String
    var events: [ProviderEventAnswer]

    enum CodingKeys: String, CodingKey {
        case inboundID = "inbound_id", provider, events
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(inboundID.lowercased, forKey: .inboundID)
        try container.encode(provider, forKey: .provider)
        try container.encode(events, forKey: .events)
    }
}

struct ProviderEventAnswer: Codable, Sendable, Equatable {
    enum Result: String, Codable, Sendable {
        /// A new message (see `inbound`).
        case taken
        /// Taken before; `inbound` is the first answer where there is one.
        case duplicate
        /// One part of a multi-part SMS, kept until the rest arrive.
        case waitingForParts = "waiting-for-parts"
        /// An event or status applied without a message.
        case recorded
        /// A kind of event this service does not act on.
        case ignored
        /// A delivery report for no message we sent.
        case noMatchingMessage = "no-matching-message"
        /// A signed request that cannot be taken in (a required field missing, an unreadable body):
        /// kept as `failed`, `detail` says why.
        case failed
    }

    /// The provider's id: LINE `webhookEventId`, Twilio `MessageSid`, Vonage `messageId`.
    var eventID: String?
    /// The provider's event type (`message`, `follow`, `status`, …).
    var type: String
    var result: Result
    var detail: String?
    var inbound: InboundOutcome?

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", type, result, detail, inbound
    }

    init(eventID: String? = nil, type: String, result: Result, detail: String? = nil, inbound: InboundOutcome? = nil) {
        self.eventID = eventID
        self.type = type
        self.result = result
        self.detail = detail
        self.inbound = inbound
    }

    /// A message event as ingest answered it: `taken` when new, `duplicate` when replayed.
    init(eventID: String?, type: String, answer: IngestAnswer) {
        switch answer {
        case .taken(let outcome): self.init(eventID: eventID, type: type, result: .taken, inbound: outcome)
        case .replayed(let outcome), .keptUnreadable(let outcome): self.init(eventID: eventID, type: type, result: .duplicate, inbound: outcome)
        }
    }
}

extension Channel: Codable {}
extension Message.Classification: Codable {}
extension Ticket.Status: Codable {}
