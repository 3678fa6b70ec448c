import Foundation
import Logging
import PostgresNIO

/// A chat message as every chat route hands it to ingest, whichever shape its provider sent.
struct InboundChat: Sendable {
    var provider: String
    var conversationID: String
    var providerMessageID: String
    var senderUserID: String
    /// The sender's chat identity first (`chat` or `line`), then any email or phone the chat collected.
    var contacts: [(kind: Customer.Identity.Kind, value: String)]
    /// The gateway checked that the email and phone are the sender's (a logged-in member): only then
    /// may they link the chat to a customer who has them (`IdentityResolver`).
    var contactsVerified = false
    var name: String?
    var text: String
    var files: [NewAttachment] = []
    /// Files the provider hosts: kept as links, never fetched.
    var links: [[String: String]] = []
    var sentAt: Date?
    /// Provider details worth keeping with the message.
    var details: [String: String] = [:]
    /// An email or phone the chat collected that cannot be one: kept with the message, flagged.
    var unreadableContacts: [UnreadableContact] = []
}

/// Takes one chat message in: stored as received, the sender resolved to a customer (their chat id,
/// and any email or phone the chat collected), and the message added to its conversation's ticket
/// while the conversation is live — one transaction.
struct ChatIngest: Sendable {
    let database: Database
    let logger: Logger
    /// A conversation quiet for longer than this starts a new ticket.
    let idleGap: Duration

    /// Stores the raw request and takes the message in, in one transaction; a message taken in before
    /// gets its first answer.
    func ingest(_ chat: InboundChat, raw: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> IngestAnswer {
        try await GatewayIngest(database: database, logger: logger).ingest(.init(
            channel: .chat, provider: chat.provider, providerMessageID: chat.providerMessageID, idempotencyKey: idempotencyKey,
            body: raw, apiKeyID: apiKeyID,
            // Its identities are locked after the conversation's (`lockKeys`); compared here, so that a
            // gateway reusing a message id for another user is told so, not answered with the first
            // user's message as if this one had been taken in.
            sender: chat.contacts.first?.value,
            // And its text: a gateway numbering messages per conversation (Twilio Conversations'
            // index) reused an id for a new question, answered as a retry and never stored.
            text: chat.text)
        ) { payloadID, _, connection in
            try await take(chat, payloadID: payloadID, on: connection)
        }
    }

    /// Writes the message of a stored payload (the caller's transaction, which records the answer):
    /// the sender's customer, the conversation's live ticket or a new one, the message and its files.
    /// `locked`: the caller took `lockKeys(chat)` already, in another statement of its own.
    func take(_ chat: InboundChat, payloadID: UUID, locked: Bool = false, on connection: PostgresConnection) async throws
        -> (messageID: UUID, outcome: InboundOutcome)
    {
        if !locked { try await AdvisoryLock.take(Self.lockKeys(chat), on: connection, logger: logger) }
        var metadata: [String: Any] = chat.details
        metadata["conversation_id"] = chat.conversationID
        metadata["provider_user_id"] = chat.senderUserID
        metadata["links"] = chat.links
        // What the sender typed in stays with the message, linked to the customer or not.
        for (kind, value) in chat.contacts.dropFirst() { metadata[kind.rawValue] = value }
        if !chat.unreadableContacts.isEmpty { metadata["unreadable_contacts"] = chat.unreadableContacts.map(\.line) }
        var message = CustomerMessage(
            channel: .chat, provider: chat.provider, providerMessageID: chat.providerMessageID, sender: .contacts(chat.contacts, verified: chat.contactsVerified),
            senderName: chat.name, from: chat.contacts.first?.value, text: chat.text, metadata: try JSONSerialization.text(metadata),
            sentAt: chat.sentAt, attachments: chat.files, eventDetails: ["provider": chat.provider])
        if !chat.unreadableContacts.isEmpty { message.flags.append("contact-unreadable") }
        let read = try await firstRead(chat, on: connection)
        return try await ConversationIntake(logger: logger).take(
            message, placement: .continuing(reason: "chat-conversation") { _, _ in read.conversationTicket },
            payloadID: payloadID, identitiesLocked: true, ownersRead: read.owners, on: connection)
    }

    /// The locks a chat message is taken under, in order: the message's own, the one a gateway's
    /// relay of it takes before it looks for the message (`InboundPayloadStore.open`), so that one
    /// LINE message arriving through LINE's webhook and a gateway at once is taken by one and found
    /// by the other (the gateway's insert failed on the unique message id: a 500); the conversation's,
    /// so two of its messages arriving together find one ticket; then the sender's identities, in the
    /// order the intake would take them.
    static func lockKeys(_ chat: InboundChat) -> [String] {
        [InboundPayloadStore.messageLockKey(channel: .chat, provider: chat.provider, providerMessageID: chat.providerMessageID),
         "chat-conversation:\(chat.provider):\(chat.conversationID)"] + IdentityStore.lockKeys(chat.contacts)
    }

    /// What a chat message needs to know once its locks are held, in one statement: the owners of
    /// the sender's identities (`identity_owners`, in `chat.contacts` order; see
    /// `IdentityStore.OwnersRead`) and the ticket of the sender's latest message in the conversation
    /// (each member of a group has a ticket of their own), if that ticket
    /// has heard from either side within the idle gap: an agent's answer keeps the conversation
    /// going, so the customer's reply to it half an hour later is not a new ticket. A ticket merged
    /// away is heard on its survivor's timeline, where the answers now go. Read after the
    /// conversation's lock, so two messages of one conversation arriving together find one ticket.
    private func firstRead(_ chat: InboundChat, on connection: PostgresConnection) async throws
        -> (owners: IdentityStore.OwnersRead, conversationTicket: UUID?)
    {
        let rows = try await connection.rows("""
            SELECT sender.n, sender.customer_id, sender.live, conversation.ticket_id
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL identity_owners(\(chat.contacts.map(\.kind.rawValue))::text[], \(chat.contacts.map(\.value))::text[]) AS sender ON true
            LEFT JOIN LATERAL (
                SELECT latest.ticket_id
                FROM (
                    -- The sender's own latest message in it: in a LINE group or a shared chat another
                    -- member's message joined the first writer's ticket, and the answer, addressed to
                    -- that ticket's customer by default, went to the wrong person.
                    SELECT ticket_id FROM messages
                    WHERE channel = 'chat' AND direction = 'inbound' AND provider = \(chat.provider)
                      AND metadata->>'conversation_id' = \(chat.conversationID)
                      AND metadata->>'provider_user_id' = \(chat.senderUserID)
                    ORDER BY created_at DESC
                    LIMIT 1
                ) AS latest
                -- Heard on the timeline the conversation now lives on: after a merge, the survivor's
                -- (agents answer there; the duplicate's own messages stop).
                WHERE EXISTS (
                    SELECT 1 FROM tickets t
                    CROSS JOIN LATERAL ticket_timeline(coalesce(t.merged_into, t.id)) AS timeline
                    JOIN messages m ON m.ticket_id = timeline.ticket_id
                    WHERE t.id = latest.ticket_id AND m.direction <> 'internal'
                      AND m.created_at > now() - make_interval(secs => \(idleGap.seconds)::float8))
            ) AS conversation ON true
            ORDER BY sender.n
            """, preparedAs: FirstRead.self, logger: logger)
        var owners = [IdentityStore.Owner?](repeating: nil, count: chat.contacts.count)
        var ticket: UUID?
        for row in rows {
            let (position, customerID, live, ticketID) = try row.decode((Int64?, UUID?, Bool?, UUID?).self)
            ticket = ticket ?? ticketID
            IdentityStore.Owner.place(position: position, customerID: customerID, live: live, in: &owners)
        }
        return (IdentityStore.OwnersRead(chat.contacts, owners), ticket)
    }

    /// Every chat message (LINE's and the generic gateway's) is read through `firstRead`.
    private enum FirstRead: PreparedSite { static let name = "madoguchi_chat_first_read" }
}
