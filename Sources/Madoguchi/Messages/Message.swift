import Foundation
import PostgresNIO

/// One entry on a ticket's timeline: a customer's message, our reply, or an internal note.
public struct Message: Sendable {
    public enum Direction: String, Sendable {
        case inbound, outbound, `internal`
    }

    public enum Classification: String, Sendable {
        case customer
        case autoReply = "auto_reply"
        case bounce
        case feedbackReport = "feedback_report"
        case deliveryReport = "delivery_report"
    }

    public struct Attachment: Sendable {
        public var id: UUID
        public var filename: String
        public var mediaType: String
        public var size: Int64
        public var sha256: [UInt8]
        public var contentID: String?
        public var inline: Bool
        /// For an attached message: the files inside it.
        var contained: [ContainedFileRecord] = []
    }

    public var id: UUID
    public var ticketID: UUID
    public var direction: Direction
    public var channel: Channel
    public var classification: Classification
    public var customerID: UUID?
    public var authorAgentID: UUID?
    public var from: String?
    public var to: [String]
    public var subject: String?
    public var bodyText: String
    public var bodyHTML: String?
    public var quotedText: String?
    /// For inbound mail: the new writing, without quoted history or signature.
    public var visibleText: String?
    public var emailMessageID: String?
    public var inReplyTo: String?
    public var threadingReason: String?
    public var attachments: [Attachment] = []
    /// Files the sender's platform hosts, kept as links: `url`, `filename`, `media_type`.
    public var links: [[String: String]] = []
    /// An agent's forward of the customer's mail: `agent_id`, `address` (`ForwardingAgent`).
    public var forwardedBy: [String: String]?
    /// A web form's mail filed under the customer in its Reply-To: the form's address (`FormRelay`).
    public var relayedBy: String?
    /// Outbound: where its delivery stands (`status`, `updated_at`, …): the provider's latest report,
    /// or a mail's outbox row.
    public var delivery: [String: String]?
    /// The customer unsent it (LINE).
    public var withdrawnAt: Date?
    public var sentAt: Date?
    public var createdAt: Date

    /// Read from a row named `message`. A provider's delivery reports are written onto the message
    /// (`metadata.delivery`); a mail's delivery is its outbox row, read here, rather than copied onto
    /// the message at every send (an update of the whole row and of every index on it).
    static let columns = """
        id, ticket_id, direction, channel, classification, customer_id, author_agent_id, from_address,
        to_addresses, subject, body_text, body_html, quoted_text, visible_text, email_message_id, in_reply_to,
        threading_reason, sent_at, created_at, (metadata->'links')::text AS links, (metadata->'forwarded_by')::text AS forwarded_by,
        metadata->>'relayed_by' AS relayed_by,
        coalesce(message.metadata->'delivery', (
            SELECT jsonb_strip_nulls(jsonb_build_object(
                'status', CASE WHEN r.state = 'bounced' THEN 'bounced' ELSE o.state END,
                'updated_at', to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'response', left(o.relay_response, 500), 'error', left(o.last_error, 500)))
            FROM replies r JOIN outbox o ON o.reply_id = r.id
            WHERE r.message_id = message.id AND message.direction = 'outbound' AND message.channel IN ('email', 'webform')
        ))::text AS delivery,
        (metadata->>'unsent_at')::timestamptz AS withdrawn_at
        """

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        ticketID = try row.value("ticket_id")
        direction = try Ticket.enumeration(row.value("direction"))
        channel = try Ticket.enumeration(row.value("channel"))
        classification = try Ticket.enumeration(row.value("classification"))
        customerID = try row.value("customer_id")
        authorAgentID = try row.value("author_agent_id")
        from = try row.value("from_address")
        to = try row.value("to_addresses")
        subject = try row.value("subject")
        bodyText = try row.value("body_text")
        bodyHTML = try row.value("body_html")
        quotedText = try row.value("quoted_text")
        visibleText = try row.value("visible_text")
        emailMessageID = try row.value("email_message_id")
        inReplyTo = try row.value("in_reply_to")
        threadingReason = try row.value("threading_reason")
        sentAt = try row.value("sent_at")
        createdAt = try row.value("created_at")
        // Kept in `metadata` by the channel that wrote them; JSON objects of strings.
        let strings = { (json: String?) in json.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } }
        links = (strings(try row.value("links", as: String?.self)) as? [[String: String]]) ?? []
        forwardedBy = strings(try row.value("forwarded_by", as: String?.self)) as? [String: String]
        relayedBy = try row.value("relayed_by")
        delivery = strings(try row.value("delivery", as: String?.self)) as? [String: String]
        withdrawnAt = try row.value("withdrawn_at")
    }
}
