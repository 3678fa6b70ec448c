import Foundation
import PostgresNIO

/// One customer's matter, across however many messages and channels it takes.
public struct Ticket: Sendable, Equatable {
    /// How the reports name a ticket without a category (`report_categories`), and the `category`
    /// filter that reaches those tickets; no ticket's category can be it.
    static let noCategory = "(none)"

    public enum Status: String, Sendable, CaseIterable {
        case new, open, pending
        case onHold = "on_hold"
        case solved, closed

        /// The statuses a ticket may move to from this one. A customer's message reopens pending and
        /// solved tickets through ingest; closed is final (a new message starts a linked ticket).
        public var allowedNext: [Status] {
            switch self {
            case .new: [.open, .pending, .onHold, .solved, .closed]
            case .open: [.pending, .onHold, .solved, .closed]
            case .pending: [.open, .onHold, .solved, .closed]
            case .onHold: [.open, .pending, .solved, .closed]
            case .solved: [.open, .closed]
            case .closed: []
            }
        }
    }

    public enum Priority: String, Sendable, CaseIterable {
        case low, normal, high, urgent
    }

    /// How the ticket's running SLA clocks stand (`ticket_sla_state`, migration 0026).
    public enum SLAState: String, Sendable, CaseIterable {
        case ok, warning, breached
    }

    public var id: UUID
    public var number: Int64
    public var subject: String
    public var status: Status
    public var priority: Priority
    public var priorityReason: String?
    /// Which rules routed the ticket, and why.
    public var routingReason: String?
    /// Set by a rule: auto-assignment gives the ticket only to an agent with this skill.
    public var requiredSkill: String?
    public var channel: Channel
    public var customerID: UUID
    public var assigneeID: UUID?
    public var queue: String
    /// Who may answer now, and until when. Nil, or in the past, means free to claim.
    public var claim: (agentID: UUID, expiresAt: Date)?
    public var category: String?
    public var tags: [String]
    public var relatedTicketID: UUID?
    /// Merged as a duplicate: the ticket it went into (always the last of a chain).
    public var mergedInto: UUID?
    /// When it was merged (with `mergedInto`).
    public var mergedAt: Date?
    /// Bumped by every change; the ETag's first part (`entityTag`).
    public var version: Int64
    public var lastCustomerMessageAt: Date?
    /// Since when the customer has been waiting for a response from us; nil when nobody is.
    public var awaitingReplySince: Date?
    public var lastRespondedAt: Date?
    /// The SLA policy whose clocks run on this ticket, if any, and the clocks' due times.
    public var slaPolicyID: UUID?
    public var firstResponseDueAt: Date?
    public var nextResponseDueAt: Date?
    public var resolutionDueAt: Date?
    /// The response clock running now (first or next), which the queue orders by.
    public var responseDueAt: Date?
    public var slaState: SLAState?
    public var createdAt: Date
    public var updatedAt: Date

    /// The strong entity tag of this representation: the version, and the SLA state when the ticket
    /// has one (`"3"`, `"3.breached"`). The state is read from the clock, not written: a ticket
    /// falls due with no change to its row, and a tag of the version alone answered a dashboard's
    /// `If-None-Match` with 304 though the ticket it showed as `ok` was now `breached`. `If-Match`
    /// compares the version part only (`IfMatch.matches(version:)`): a clock passing a due time is
    /// nobody's edit to guard against.
    public var entityTag: String { "\"" + String(version) + (slaState.map { "." + $0.rawValue } ?? "") + "\"" }

    public static func == (left: Ticket, right: Ticket) -> Bool {
        left.id == right.id && left.version == right.version
    }

    static let columns = columns(of: nil)

    /// The statuses of a ticket still being worked on, as an SQL list.
    static let openStatuses = "('new', 'open', 'pending', 'on_hold')"

    /// The select list `Ticket(row:)` reads, each column qualified by `alias` when given (for a
    /// statement that joins). `sla_state` comes from `ticket_sla_state` (migration 0026), the one
    /// definition of ok, warning and breached.
    static func columns(of alias: String?) -> String {
        let table = alias.map { $0 + "." } ?? ""
        let names = [
            "id", "number", "subject", "status", "priority", "priority_reason", "routing_reason", "required_skill", "channel", "customer_id", "assignee_id", "queue",
            "claim_agent_id", "claim_expires_at", "category", "tags", "related_ticket_id", "merged_into", "merged_at", "version",
            "last_customer_message_at", "awaiting_reply_since", "last_responded_at",
            "sla_policy_id", "first_response_due_at", "next_response_due_at", "resolution_due_at", "response_due_at",
            "created_at", "updated_at",
        ]
        return (names.map { table + $0 } + [slaState(of: alias) + " AS sla_state"]).joined(separator: ", ")
    }

    /// The ticket's SLA state as SQL, for select lists and filters alike.
    static func slaState(of alias: String? = nil) -> String {
        let table = alias.map { $0 + "." } ?? ""
        let arguments = ["sla_policy_id", "status", "sla_paused_at", "response_due_at", "response_warn_at", "resolution_due_at", "resolution_warn_at"]
        return "ticket_sla_state(\(arguments.map { table + $0 }.joined(separator: ", ")))"
    }

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        number = try row.value("number")
        subject = try row.value("subject")
        status = try Self.enumeration(row.value("status"))
        priority = try Self.enumeration(row.value("priority"))
        priorityReason = try row.value("priority_reason")
        routingReason = try row.value("routing_reason")
        requiredSkill = try row.value("required_skill")
        channel = try Self.enumeration(row.value("channel"))
        customerID = try row.value("customer_id")
        assigneeID = try row.value("assignee_id")
        queue = try row.value("queue")
        if let agent: UUID = try row.value("claim_agent_id"), let expiry: Date = try row.value("claim_expires_at") {
            claim = (agent, expiry)
        }
        category = try row.value("category")
        tags = try row.value("tags")
        relatedTicketID = try row.value("related_ticket_id")
        mergedInto = try row.value("merged_into")
        mergedAt = try row.value("merged_at")
        version = try row.value("version")
        lastCustomerMessageAt = try row.value("last_customer_message_at")
        awaitingReplySince = try row.value("awaiting_reply_since")
        lastRespondedAt = try row.value("last_responded_at")
        slaPolicyID = try row.value("sla_policy_id")
        firstResponseDueAt = try row.value("first_response_due_at")
        nextResponseDueAt = try row.value("next_response_due_at")
        resolutionDueAt = try row.value("resolution_due_at")
        responseDueAt = try row.value("response_due_at")
        slaState = try (row.value("sla_state") as String?).map(Self.enumeration)
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
    }

    /// A text column constrained by a CHECK to the enumeration's raw values.
    static func enumeration<T: RawRepresentable>(_ raw: String) throws -> T where T.RawValue == String {
        guard let value = T(rawValue: raw) else { throw UnexpectedStoredValue(raw, for: T.self) }
        return value
    }
}

/// How a message reached us (or leaves us).
public enum Channel: String, Sendable, CaseIterable {
    case email, webform, sms, chat
}
