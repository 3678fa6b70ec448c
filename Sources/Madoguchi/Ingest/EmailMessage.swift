import Foundation
import MadoguchiMail

extension NewMessage {
    /// A parsed mail as the `messages` row and `attachments` it becomes. `providerID` is the
    /// Message-ID, or the bytes' digest for a mail without one: what makes a retry the same message.
    /// An agent's forward (`forwardedBy`) is the customer's message: from the original sender, with
    /// the original's subject and text, and none of the agent's words (their note holds those; the
    /// stored raw mail, the whole forward): read as the customer's, the quoted-text guard had let an
    /// agent's "●●" through as something the customer wrote. A web form's mail (`relayed`) is from
    /// the customer it came for; `relayed_by` keeps the form's address.
    init(mail: ParsedMail, payloadID: UUID, providerID: String, ticketID: UUID, customerID: UUID, threadingReason: String?,
         forwardedBy: ForwardingAgent? = nil, relayed: FormRelay.Relayed? = nil) throws {
        self.init(
            ticketID: ticketID, direction: .inbound, channel: .email, classification: Message.Classification(mail.classification),
            customerID: customerID, inboundPayloadID: payloadID, provider: "", providerMessageID: providerID,
            from: mail.from.flatMap { $0.address.isEmpty ? nil : Text.limit($0.address, 1000) }, to: (mail.to + mail.cc).map { Text.limit($0.address, 1000) },
            subject: mail.subject.map { Text.limit($0, 2000) }, bodyText: Text.clean(mail.text), bodyHTML: mail.html.map(Text.clean),
            quotedText: Text.clean(mail.quotedText), visibleText: Text.clean(mail.visibleText),
            emailMessageID: mail.messageID, inReplyTo: mail.inReplyTo.first, references: mail.references,
            threadingReason: threadingReason, metadata: try Self.metadata(of: mail, forwardedBy: forwardedBy, relayed: relayed), sentAt: mail.date,
            attachments: mail.attachments.map {
                NewAttachment(filename: Text.limit($0.filename ?? "", 1000), mediaType: Text.limit($0.mediaType, 255), content: $0.content,
                              contentID: $0.contentID.map { Text.limit($0, 1000) }, isInline: $0.isInline,
                              contained: $0.contained.map {
                                  ContainedFileRecord(filename: Text.limit($0.filename ?? "", 1000), mediaType: Text.limit($0.mediaType, 255), size: Int64($0.size))
                              })
            })
        if let relayed { from = Text.limit(relayed.written, 1000) }
        if let forwardedBy {
            from = Text.limit(forwardedBy.original.address, 1000)
            subject = forwardedBy.subject.map { Text.limit($0, 2000) }
            bodyText = Text.clean(forwardedBy.forward.text)
            bodyHTML = nil
            visibleText = Text.clean(forwardedBy.forward.visibleText)
            quotedText = Text.clean(forwardedBy.forward.quotedText)
        }
    }

    /// What has no column of its own: names, Cc and Reply-To, the list and auto-reply headers,
    /// the delivery report and the parser's defects.
    private static func metadata(of mail: ParsedMail, forwardedBy: ForwardingAgent?, relayed: FormRelay.Relayed?) throws -> String {
        var object: [String: Any] = [:]
        if let forwardedBy {
            if let name = forwardedBy.original.name { object["from_name"] = Text.clean(name) }
            object["forwarded_by"] = ["agent_id": forwardedBy.agentID.lowercased, "address": Text.limit(forwardedBy.address, 1000)]
        } else if let relayed {
            if let name = relayed.customer.name { object["from_name"] = Text.clean(name) }
            object["relayed_by"] = Text.limit(relayed.form, 1000)
        } else if let name = mail.from?.name {
            object["from_name"] = Text.clean(name)
        }
        if !mail.cc.isEmpty { object["cc"] = mail.cc.map { Text.clean($0.description) } }
        if !mail.replyTo.isEmpty { object["reply_to"] = mail.replyTo.map { Text.clean($0.description) } }
        if let value = mail.autoSubmitted { object["auto_submitted"] = Text.clean(value) }
        if let value = mail.precedence { object["precedence"] = Text.clean(value) }
        if let value = mail.listID { object["list_id"] = Text.clean(value) }
        if !mail.defects.isEmpty { object["defects"] = mail.defects.map(Text.clean) }
        if let report = mail.deliveryReport.map(Text.clean) {
            object["delivery_report"] = report.recipients.map { recipient -> [String: Any] in
                var entry: [String: Any] = ["address": recipient.address, "action": recipient.action, "reason": recipient.reason]
                if let status = recipient.status { entry["status"] = status }
                if let diagnostic = recipient.diagnostic { entry["diagnostic"] = Text.limit(diagnostic, 2000) }
                return entry
            }
        }
        return try JSONSerialization.text(object)
    }
}

extension Message.Classification {
    init(_ classification: MailClassification) {
        self = Message.Classification(rawValue: classification.rawValue) ?? .customer
    }
}
