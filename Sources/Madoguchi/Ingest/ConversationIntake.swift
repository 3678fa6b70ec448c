import Foundation
import Logging
import PostgresNIO

/// A customer's message as every channel hands it to the intake, whichever shape it arrived in.
struct CustomerMessage: Sendable {
    enum Sender: Sendable {
        /// One identity of the channel's own (an SMS sender's number), kept with its raw spelling.
        case identity(kind: Customer.Identity.Kind, value: String, raw: String)
        /// The channel's identity first, then whatever contacts the sender typed in (a chat's email,
        /// a form's phone), and whether the gateway checked those (see `IdentityResolver`).
        case contacts([(kind: Customer.Identity.Kind, value: String)], verified: Bool)
    }

    var channel: Channel
    var provider: String
    var providerMessageID: String?
    var sender: Sender
    var senderName: String?
    /// A new ticket's subject; nil takes the text's first line.
    var subject: String? = nil
    var from: String?
    var to: [String] = []
    /// What the agent reads (a form's fields shown under the text).
    var text: String
    /// What the customer wrote, for rules and the ticket's title; nil when it is `text`.
    var visibleText: String? = nil
    var metadata: String = "{}"
    var sentAt: Date? = nil
    var attachments: [NewAttachment] = []
    /// Flags the channel reports itself (`unverified-sender`).
    var flags: [String] = []
    /// Event details particular to the channel (`provider`, `form_id`).
    var eventDetails: [String: String] = [:]

    var writing: String { visibleText ?? text }
}

/// The one path a customer's message takes into a ticket, whatever its channel: the sender resolved
/// to one customer, the conversation continued or a ticket opened (rules applied in the same
/// transaction), the message written, a waiting ticket reopened, the event recorded — all in the
/// caller's transaction, which also stores the payload and its answer.
///
/// Channels differ only in how they normalize a request into a `CustomerMessage` and how they find
/// the ticket a message continues (`Placement`). Email threads by rules of its own and joins at
/// `record`.
struct ConversationIntake: Sendable {
    let logger: Logger

    var events: EventStore { EventStore(logger: logger) }
    var tickets: TicketStore { TicketStore(logger: logger) }

    enum Placement: Sendable {
        /// Every message its own ticket (a web-form submission is one matter).
        case newTicket(tags: [String])
        /// The conversation's ticket if `find` names one, recorded with `reason`; else a new ticket.
        case continuing(reason: String, find: @Sendable (_ customerID: UUID, _ connection: PostgresConnection) async throws -> UUID?)
    }

    /// `identitiesLocked`: the caller already holds the sender's identity locks (taken with the
    /// payload's insert, `GatewayIngest.Delivery.senderIdentities`); `ownersRead`: their owners, when
    /// the caller read them under those locks.
    func take(
        _ message: CustomerMessage, placement: Placement, payloadID: UUID, identitiesLocked: Bool = false,
        ownersRead: IdentityStore.OwnersRead = .none, on connection: PostgresConnection
    ) async throws -> (messageID: UUID, outcome: InboundOutcome) {
        let (customerID, flags) = try await resolveSender(message, locked: identitiesLocked, ownersRead: ownersRead, on: connection)
        let ticket: Target
        let reason: String
        switch placement {
        case .newTicket(let tags):
            ticket = try await open(
                customerID: customerID, channel: message.channel, subject: message.subject ?? message.channel.conversationTitle,
                body: message.writing, relatedTo: nil, tags: tags, recipients: message.to, on: connection)
            reason = "new-ticket"
        case .continuing(let continuingReason, let find):
            (ticket, reason) = try await continueConversation(
                try await find(customerID, connection), reason: continuingReason, customerID: customerID, channel: message.channel,
                subject: message.subject, body: message.writing, tags: [], recipients: message.to, on: connection)
        }
        let row = NewMessage(
            ticketID: ticket.id, direction: .inbound, channel: message.channel, customerID: customerID, inboundPayloadID: payloadID,
            provider: message.provider, providerMessageID: message.providerMessageID, from: message.from, to: message.to,
            subject: message.subject, bodyText: message.text, visibleText: message.writing, threadingReason: reason,
            metadata: message.metadata, sentAt: message.sentAt, attachments: message.attachments)
        let (messageID, now) = try await record(row, on: ticket, customerID: customerID, eventDetails: message.eventDetails, on: connection)

        var outcome = InboundOutcome(inboundID: payloadID, channel: message.channel)
        outcome.classification = .customer
        outcome.took(message: messageID, on: now, customerID: customerID)
        outcome.threadingReason = reason
        let allFlags = message.flags + flags
        outcome.flags = allFlags.isEmpty ? nil : allFlags
        return (messageID, outcome)
    }

    /// The last step every channel shares: writes `message` on `ticket` and records
    /// `message.received`. The caller opened the ticket, or locked it (`lock(_:customerWrites:on:)`,
    /// which moved its clocks if a customer writes); a bounce joins its ticket unlocked. Returns the
    /// message and the ticket.
    func record(
        _ message: NewMessage, on ticket: Target, customerID: UUID, eventDetails: [String: String], on connection: PostgresConnection
    ) async throws -> (messageID: UUID, ticket: Target) {
        let messageID = try await MessageStore(logger: logger).insert(message, on: connection)
        var data: [String: Any] = ["channel": message.channel.rawValue, "threading": message.threadingReason ?? ""]
        data.merge(eventDetails) { _, detail in detail }
        try await events.record(.messageReceived, ticketID: ticket.id, customerID: customerID, messageID: messageID, actor: nil, data: data, on: connection)
        return (messageID, ticket)
    }

    private func resolveSender(
        _ message: CustomerMessage, locked: Bool, ownersRead: IdentityStore.OwnersRead, on connection: PostgresConnection
    ) async throws -> (UUID, [String]) {
        let resolver = IdentityResolver(logger: logger)
        switch message.sender {
        case .identity(let kind, let value, let raw):
            let resolution = try await resolver.resolve(
                kind: kind, value: value, rawValue: raw, displayName: message.senderName, locked: locked, ownersRead: ownersRead, on: connection)
            return (resolution.customerID, [])
        case .contacts(let contacts, let verified):
            return try await resolver.resolve(
                contacts: contacts, claimsVerified: verified, displayName: message.senderName, channel: message.channel, locked: locked, ownersRead: ownersRead,
                on: connection)
        }
    }
}
