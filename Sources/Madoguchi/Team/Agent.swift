import Foundation
import PostgresNIO

/// A person on the team: who answers, in which queues, with what skills, how much at once, and
/// whether they are on duty now.
public struct Agent: Sendable {
    public enum Availability: String, Sendable, CaseIterable {
        /// On duty: auto-assignment may give them tickets.
        case available
        /// Briefly away (lunch, a meeting): keeps their tickets, gets no new ones.
        case away
        /// Off shift.
        case offline
    }

    public var id: UUID
    public var displayName: String
    public var email: String?
    /// The queues they pull from and are assigned in; none means they pull from all and are assigned in none.
    public var queues: [String]
    public var skills: [String]
    /// The most open tickets auto-assignment gives them; nil, no limit.
    public var capacity: Int?
    public var availability: Availability
    public var availabilityChangedAt: Date
    /// Their replies go through a supervisor's approval (承認フロー).
    public var requiresApproval: Bool
    /// The roles of the keys that act for them now (`agent`, `supervisor`): what they may do.
    public var roles: [String]
    public var active: Bool
    public var deactivatedAt: Date?
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date

    static let columns = """
        id, display_name, email, queues, skills, capacity, availability, availability_changed_at, requires_approval, active,
        deactivated_at, version, created_at, updated_at,
        ARRAY(SELECT DISTINCT k.role FROM api_keys k WHERE k.agent_id = agents.id AND k.revoked_at IS NULL ORDER BY 1) AS roles
        """

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        displayName = try row.value("display_name")
        email = try row.value("email")
        queues = try row.value("queues")
        skills = try row.value("skills")
        capacity = (try row.value("capacity") as Int32?).map(Int.init)
        availability = try Ticket.enumeration(row.value("availability"))
        availabilityChangedAt = try row.value("availability_changed_at")
        requiresApproval = try row.value("requires_approval")
        roles = try row.value("roles")
        active = try row.value("active")
        deactivatedAt = try row.value("deactivated_at")
        version = try row.value("version")
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
    }
}

/// What an agent's create or update sets; nil leaves a field as it is (on create: its default).
struct AgentChanges: Sendable {
    var displayName: String?
    var email: String?
    var queues: [String]?
    var skills: [String]?
    var capacity: Int?
    var availability: Agent.Availability?
    var requiresApproval: Bool?

    /// The names of the fields present, as the API spells them (for `agent.updated`).
    var fieldNames: [String] {
        [("display_name", displayName != nil), ("email", email != nil), ("queues", queues != nil), ("skills", skills != nil),
         ("capacity", capacity != nil), ("requires_approval", requiresApproval != nil)].filter(\.1).map(\.0)
    }

    /// What the schema says and the generated decoder does not enforce, as 422 problems.
    func problems() -> [Problem.FieldError] {
        var problems: [Problem.FieldError] = []
        if let displayName, !(1...200).contains(displayName.count) {
            problems.append(.init(pointer: "/display_name", message: "must be 1 to 200 characters after trimming spaces"))
        }
        if let email, !email.isEmpty, email.count > 320 || !email.contains("@") || email.contains(where: \.isWhitespace) {
            problems.append(.init(pointer: "/email", message: "'\(email.prefix(100))' is not an email address"))
        }
        // On an update, 0 removes the limit; an agent is created without one by leaving it out.
        if let capacity, !(0...10_000).contains(capacity) {
            problems.append(.init(pointer: "/capacity", message: "must be 1 to 10000 open tickets, or 0 for no limit"))
        }
        let name = /^[a-z0-9_-]{1,64}$/
        for (field, values) in [("queues", queues), ("skills", skills)] {
            guard let values else { continue }
            if values.count > 50 { problems.append(.init(pointer: "/\(field)", message: "at most 50")) }
            for (index, value) in values.enumerated() where value.wholeMatch(of: name) == nil {
                problems.append(.init(pointer: "/\(field)/\(index)", message: "'\(value.prefix(100))' is not a name of lower-case letters, digits, _ and -"))
            }
        }
        return problems
    }
}

/// What an agent carries now (`GET /v1/agents/{id}/workload`).
struct AgentWorkload: Sendable {
    var agentID: UUID
    var open: Int
    var claimed: Int
    var assigned: Int
    var awaitingReply: Int
    var oldestWaitingSince: Date?
    var capacity: Int?
    var availability: Agent.Availability
}
