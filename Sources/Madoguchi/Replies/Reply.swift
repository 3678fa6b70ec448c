import Foundation
import PostgresNIO

/// A reply an agent drafts on a ticket and, once the guards pass, sends.
public struct Reply: Sendable {
    public enum State: String, Sendable {
        case draft, submitted, approved, queued, sent, failed, bounced
    }

    public var id: UUID
    public var ticketID: UUID
    public var authorAgentID: UUID
    public var channel: Channel
    public var recipients: [String]
    public var subject: String?
    public var body: String
    public var state: State
    public var messageID: UUID?
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date
    public var sentAt: Date?
    /// Who submitted it for approval, while it awaits one: its author, or a colleague who took the
    /// ticket over. The approval goes out on their behalf.
    public var submittedBy: UUID?
    /// Agents other than the author who changed it before it went (migration 0060): a flagged one's
    /// words need approval whoever sends them, and none of them approves it.
    public var editors: [UUID]
    /// Sent although a recipient was known to be undeliverable, because whoever sent it (or approved
    /// it) said so (`confirm_undeliverable`): the record of a warning overridden.
    public var confirmedUndeliverable: Bool

    static let columns = """
        id, ticket_id, author_agent_id, channel, recipients, subject, body_text, state, message_id, version,
        created_at, updated_at, sent_at, submitted_by, editors, confirmed_undeliverable
        """

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        ticketID = try row.value("ticket_id")
        authorAgentID = try row.value("author_agent_id")
        channel = try Ticket.enumeration(row.value("channel"))
        recipients = try row.value("recipients")
        subject = try row.value("subject")
        body = try row.value("body_text")
        state = try Ticket.enumeration(row.value("state"))
        messageID = try row.value("message_id")
        version = try row.value("version")
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
        sentAt = try row.value("sent_at")
        submittedBy = try row.value("submitted_by")
        editors = try row.value("editors")
        confirmedUndeliverable = try row.value("confirmed_undeliverable")
    }
}
