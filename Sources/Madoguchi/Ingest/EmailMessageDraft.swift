import Foundation
import Logging
import MadoguchiMail
import NIOCore
import PostgresNIO

/// A parsed mail as the rows it becomes: one `messages` row and its `attachments`.
struct MessageDraft: Sendable {
    let mail: ParsedMail
    let payloadID: UUID
    /// The Message-ID, or the bytes' digest for a mail without one: what makes a retry the same message.
    let providerID: String

    func insert(ticketID: UUID, customerID: UUID, threadingReason: String?, logger: Logger, on connection: PostgresConnection) async throws -> UUID {
        let rows = try await connection.query("""
            INSERT INTO messages (
                ticket_id, direction, channel, classification, customer_id, inbound_payload_id, provider, provider_message_id,
                from_address, to_addresses, subject, body_text, body_html, quoted_text, visible_text,
                email_message_id, in_reply_to, email_references, threading_reason, metadata, sent_at)
            VALUES (
                \(ticketID), 'inbound', 'email', \(mail.classification.rawValue), \(customerID), \(payloadID), '', \(providerID),
                \(mail.from.map { Text.limit($0.address, 1000) }), \(recipients), \(mail.subject.map { Text.limit($0, 2000) }),
                \(Text.clean(mail.text)), \(mail.html.map(Text.clean)), \(Text.clean(mail.quotedText)), \(Text.clean(mail.visibleText)),
                \(mail.messageID), \(mail.inReplyTo.first), \(mail.references), \(threadingReason), \(try metadata())::jsonb, \(mail.date))
            RETURNING id
            """, logger: logger)
        var messageID: UUID?
        for try await id in rows.decode(UUID.self) { messageID = id }
        guard let messageID else { throw Problem.internalError }
        try await AttachmentWriter(logger: logger).insert(mail.attachments.map {
            .init(filename: Text.limit($0.filename ?? "", 1000), mediaType: Text.limit($0.mediaType, 255), content: $0.content,
                  contentID: $0.contentID.map { Text.limit($0, 1000) }, isInline: $0.isInline)
        }, messageID: messageID, on: connection)
        return messageID
    }

    private var recipients: [String] { (mail.to + mail.cc).map { Text.limit($0.address, 1000) } }

    /// What has no column of its own: names, Cc and Reply-To, the list and auto-reply headers,
    /// the delivery report and the parser's defects.
    private func metadata() throws -> String {
        var object: [String: Any] = [:]
        if let name = mail.from?.name { object["from_name"] = Text.clean(name) }
        if !mail.cc.isEmpty { object["cc"] = mail.cc.map { Text.clean($0.description) } }
        if !mail.replyTo.isEmpty { object["reply_to"] = mail.replyTo.map { Text.clean($0.description) } }
        if let value = mail.autoSubmitted { object["auto_submitted"] = Text.clean(value) }
        if let value = mail.precedence { object["precedence"] = Text.clean(value) }
        if let value = mail.listID { object["list_id"] = Text.clean(value) }
        if !mail.defects.isEmpty { object["defects"] = mail.defects.map(Text.clean) }
        if let report = mail.deliveryReport {
            object["delivery_report"] = report.recipients.map { recipient -> [String: Any] in
                var entry: [String: Any] = ["address": Text.clean(recipient.address), "action": recipient.action, "reason": recipient.reason]
                if let status = recipient.status { entry["status"] = status }
                if let diagnostic = recipient.diagnostic { entry["diagnostic"] = Text.limit(diagnostic, 2000) }
                return entry
            }
        }
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
