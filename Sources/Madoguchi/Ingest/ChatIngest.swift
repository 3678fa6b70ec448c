import Foundation
import Logging
import MadoguchiAPI
import NIOCore
import PostgresNIO

/// A chat message as every chat route hands it to ingest, whichever shape its provider sent.
struct InboundChat: Sendable {
    var provider: String
    var conversationID: String
    var providerMessageID: String
    var senderUserID: String
    /// The sender's chat identity first (`chat` or `line`), then any email or phone the chat collected.
    var contacts: [(kind: Customer.Identity.Kind, value: String)]
    var name: String?
    var text: String
    var files: [AttachmentWriter.File] = []
    /// Files the provider hosts: kept as links, never fetched.
    var links: [[String: String]] = []
    var sentAt: Date?
    /// Provider details worth keeping with the message.
    var details: [String: String] = [:]
}

/// Takes one chat message in: stored as received, the sender resolved to a customer (their chat id,
/// and any email or phone the chat collected), and the message added to its conversation's ticket
/// while the conversation is live — one transaction.
struct ChatIngest: Sendable {
    let database: Database
    let logger: Logger
    /// A conversation quiet for longer than this starts a new ticket.
    let idleGap: Duration

    typealias Outcome = Components.Schemas.InboundResult
    typealias Chat = Components.Schemas.ChatMessage

    static func validate(_ chat: Chat) throws -> InboundChat {
        var errors: [Problem.FieldError] = []
        if chat.provider.range(of: #"^[a-z0-9_.-]{1,100}$"#, options: .regularExpression) == nil {
            errors.append(.init(pointer: "/provider", message: "is not a lower-case provider name like 'intercom'"))
        }
        for (field, text, limit) in [("/conversation_id", chat.conversationId, 200), ("/provider_message_id", chat.providerMessageId, 200),
                                     ("/sender/provider_user_id", chat.sender.providerUserId, 200), ("/text", chat.text ?? "", 20_000),
                                     ("/sender/name", chat.sender.name ?? "", 500)] {
            if text.contains("\u{0}") { errors.append(.init(pointer: field, message: "contains a NUL character")) }
            if text.count > limit { errors.append(.init(pointer: field, message: "is longer than \(limit) characters")) }
            if field != "/text", field != "/sender/name", text.trimmingCharacters(in: .whitespaces).isEmpty {
                errors.append(.init(pointer: field, message: "is blank"))
            }
        }
        var contacts: [(Customer.Identity.Kind, String)] = [(.chat, "\(chat.provider):\(chat.sender.providerUserId)")]
        for (kind, raw, field) in [(Customer.Identity.Kind.email, chat.sender.email, "/sender/email"), (.phone, chat.sender.phone, "/sender/phone")] {
            guard let raw, !raw.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            do { contacts.append((kind, try IdentityValue.normalize(kind, raw, field: field))) } catch let problem as Problem { errors += problem.errors }
        }
        var files: [AttachmentWriter.File] = []
        var links: [[String: String]] = []
        for (index, attachment) in (chat.attachments ?? []).enumerated() {
            let pointer = "/attachments/\(index)"
            let name = String(attachment.filename.map { $0 == "/" || $0 == "\\" || $0.isNewline ? "_" : $0 })
            if !attachment.mediaType.contains("/") { errors.append(.init(pointer: pointer + "/media_type", message: "is not a media type like image/png")) }
            switch (attachment.contentBase64, attachment.url) {
            case (let base64?, _):
                guard let data = Data(base64Encoded: base64, options: .ignoreUnknownCharacters), data.count <= WebformIngest.attachmentLimit else {
                    errors.append(.init(pointer: pointer + "/content_base64", message: "is not base64 of at most \(WebformIngest.attachmentLimit) bytes"))
                    continue
                }
                files.append(.init(filename: name, mediaType: attachment.mediaType.lowercased(), content: [UInt8](data)))
            case (nil, let url?):
                guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? "") else {
                    errors.append(.init(pointer: pointer + "/url", message: "is not an http(s) URL"))
                    continue
                }
                links.append(["filename": name, "media_type": attachment.mediaType, "url": url])
            case (nil, nil):
                errors.append(.init(pointer: pointer, message: "needs content_base64 or url"))
            }
        }
        let text = chat.text ?? ""
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && files.isEmpty && links.isEmpty {
            errors.append(.init(pointer: "/text", message: "is empty and there is no attachment"))
        }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }
        let name = chat.sender.name?.trimmingCharacters(in: .whitespacesAndNewlines)
        return InboundChat(
            provider: chat.provider, conversationID: chat.conversationId, providerMessageID: chat.providerMessageId,
            senderUserID: chat.sender.providerUserId, contacts: contacts, name: name?.isEmpty == false ? name : nil, text: text,
            files: files, links: links, sentAt: chat.sentAt)
    }

    /// Stores the raw request and takes the message in, in one transaction. `200` and the first
    /// answer for a message already taken in.
    func ingest(_ chat: InboundChat, raw: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> (status: Int, outcome: Outcome) {
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            switch try await payloads.open(
                channel: .chat, provider: chat.provider, providerMessageID: chat.providerMessageID, idempotencyKey: idempotencyKey,
                body: raw, apiKeyID: apiKeyID, on: connection) {
            case .replay(let outcome):
                return (200, outcome)
            case .fresh(let payloadID):
                let taken = try await take(chat, payloadID: payloadID, on: connection)
                try await payloads.finish(payloadID, providerMessageID: chat.providerMessageID, parseError: nil, responseStatus: 201,
                                          outcome: taken.outcome, messageID: taken.messageID, on: connection)
                return (201, taken.outcome)
            }
        }
    }

    /// Writes the message of a stored payload (the caller's transaction, which records the answer):
    /// the sender's customer, the conversation's live ticket or a new one, the message and its files.
    func take(_ chat: InboundChat, payloadID: UUID, on connection: PostgresConnection) async throws -> (messageID: UUID, outcome: Outcome) {
        // One conversation at a time, so two of its messages arriving together find one ticket.
        try await AdvisoryLock.take("chat-conversation:\(chat.provider):\(chat.conversationID)", on: connection, logger: logger)
        let (customerID, flags) = try await IdentityResolver(logger: logger).resolve(
            contacts: chat.contacts, displayName: chat.name, channel: .chat, on: connection)
        let intake = TicketIntake(logger: logger)
        var (ticket, reason) = try await intake.continueConversation(
            try await conversationTicket(chat, on: connection), reason: "chat-conversation",
            customerID: customerID, channel: .chat, body: chat.text, on: connection)
        var metadata: [String: Any] = chat.details
        metadata["conversation_id"] = chat.conversationID
        metadata["provider_user_id"] = chat.senderUserID
        metadata["links"] = chat.links
        let json = String(decoding: try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys]), as: UTF8.self)
        let rows = try await connection.query("""
            INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, inbound_payload_id, provider, provider_message_id,
                                  from_address, body_text, visible_text, threading_reason, metadata, sent_at)
            VALUES (\(ticket.id), 'inbound', 'chat', 'customer', \(customerID), \(payloadID), \(chat.provider), \(chat.providerMessageID),
                    \(chat.contacts.first?.value), \(chat.text), \(chat.text), \(reason), \(json)::jsonb, \(chat.sentAt))
            RETURNING id
            """, logger: logger)
        var created: UUID?
        for try await id in rows.decode(UUID.self) { created = id }
        guard let messageID = created else { throw Problem.internalError }
        try await AttachmentWriter(logger: logger).insert(chat.files, messageID: messageID, on: connection)
        if ticket.status != .new { ticket.status = try await intake.customerWrote(on: ticket, on: connection) }
        try await EventStore(logger: logger).record(
            .messageReceived, ticketID: ticket.id, customerID: customerID, messageID: messageID, actor: nil,
            data: ["channel": "chat", "provider": chat.provider, "threading": reason], on: connection)

        var outcome = Outcome(inboundId: payloadID.resourceID, channel: .chat, parseStatus: .parsed)
        outcome.classification = .customer
        outcome.took(message: messageID, on: ticket, customerID: customerID)
        outcome.threadingReason = reason
        outcome.flags = flags.isEmpty ? nil : flags
        return (messageID, outcome)
    }

    /// The ticket of the conversation's latest message, if that message is within the idle gap.
    private func conversationTicket(_ chat: InboundChat, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT ticket_id FROM messages
            WHERE channel = 'chat' AND direction = 'inbound' AND provider = \(chat.provider)
              AND metadata->>'conversation_id' = \(chat.conversationID)
              AND created_at > now() - make_interval(secs => \(Double(idleGap.components.seconds)))
            ORDER BY created_at DESC
            LIMIT 1
            """, logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }
}
