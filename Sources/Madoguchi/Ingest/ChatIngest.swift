import Foundation
import Logging
import MadoguchiAPI
import NIOCore
import PostgresNIO

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

    struct Validated: Sendable {
        var contacts: [(kind: Customer.Identity.Kind, value: String)]
        var name: String?
        var text: String
        var files: [(filename: String, mediaType: String, content: [UInt8])]
        var links: [[String: String]]
    }

    static func validate(_ chat: Chat) throws -> Validated {
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
        var files: [(String, String, [UInt8])] = []
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
                files.append((name, attachment.mediaType.lowercased(), [UInt8](data)))
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
        return Validated(contacts: contacts, name: name?.isEmpty == false ? name : nil, text: text, files: files, links: links)
    }

    func ingest(_ chat: Chat, raw: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> (status: Int, outcome: Outcome) {
        let message = try Self.validate(chat)
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            let payloadID: UUID
            switch try await payloads.open(
                channel: .chat, provider: chat.provider, providerMessageID: chat.providerMessageId, idempotencyKey: idempotencyKey,
                body: raw, apiKeyID: apiKeyID, on: connection) {
            case .replay(let outcome): return (200, outcome)
            case .fresh(let id): payloadID = id
            }
            // One conversation at a time, so two of its messages arriving together find one ticket.
            try await AdvisoryLock.take("chat-conversation:\(chat.provider):\(chat.conversationId)", on: connection, logger: logger)
            let (customerID, flags) = try await IdentityResolver(logger: logger).resolve(
                contacts: message.contacts, displayName: message.name, channel: .chat, on: connection)

            let intake = TicketIntake(logger: logger)
            var reason = "chat-conversation"
            var ticket: TicketIntake.Target?
            var related: UUID?
            if let live = try await conversationTicket(chat, on: connection), let locked = try await intake.lock(live, on: connection) {
                if locked.status == .closed { related = locked.id } else { ticket = locked }
            }
            if ticket == nil {
                reason = related == nil ? "new-ticket" : "reopened-closed"
                let firstLine = message.text.split(separator: "\n").first.map { String($0.prefix(60)) } ?? ""
                ticket = try await intake.open(customerID: customerID, channel: .chat, subject: firstLine.isEmpty ? "Chat" : firstLine,
                                               body: message.text, relatedTo: related, on: connection)
            }
            guard var ticket else { throw Problem.internalError }
            let metadata = String(decoding: try JSONSerialization.data(withJSONObject: [
                "conversation_id": chat.conversationId, "provider_user_id": chat.sender.providerUserId, "links": message.links,
            ], options: [.sortedKeys]), as: UTF8.self)
            let rows = try await connection.query("""
                INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, inbound_payload_id, provider, provider_message_id,
                                      from_address, body_text, visible_text, threading_reason, metadata, sent_at)
                VALUES (\(ticket.id), 'inbound', 'chat', 'customer', \(customerID), \(payloadID), \(chat.provider), \(chat.providerMessageId),
                        \(message.contacts[0].value), \(message.text), \(message.text), \(reason), \(metadata)::jsonb, \(chat.sentAt))
                RETURNING id
                """, logger: logger)
            var created: UUID?
            for try await id in rows.decode(UUID.self) { created = id }
            guard let messageID = created else { throw Problem.internalError }
            try await AttachmentWriter(logger: logger).insert(
                message.files.map { .init(filename: $0.filename, mediaType: $0.mediaType, content: $0.content) }, messageID: messageID, on: connection)
            if ticket.status != .new { ticket.status = try await intake.customerWrote(on: ticket, on: connection) }
            try await EventStore(logger: logger).record(
                "message.received", ticketID: ticket.id, customerID: customerID, messageID: messageID, actor: nil,
                data: ["channel": "chat", "provider": chat.provider, "threading": reason], on: connection)

            var outcome = Outcome(inboundId: payloadID.resourceID, channel: .chat, parseStatus: .parsed)
            outcome.classification = .customer
            outcome.took(message: messageID, on: ticket, customerID: customerID)
            outcome.threadingReason = reason
            outcome.flags = flags.isEmpty ? nil : flags
            try await payloads.finish(payloadID, providerMessageID: chat.providerMessageId, parseError: nil, responseStatus: 201,
                                      outcome: outcome, messageID: messageID, on: connection)
            return (201, outcome)
        }
    }

    /// The ticket of the conversation's latest message, if that message is within the idle gap.
    private func conversationTicket(_ chat: Chat, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT ticket_id FROM messages
            WHERE channel = 'chat' AND direction = 'inbound' AND provider = \(chat.provider)
              AND metadata->>'conversation_id' = \(chat.conversationId)
              AND created_at > now() - make_interval(secs => \(Double(idleGap.components.seconds)))
            ORDER BY created_at DESC
            LIMIT 1
            """, logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }
}
