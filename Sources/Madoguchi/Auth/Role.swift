import Foundation

/// Who a key speaks for. See DESIGN.md, "Who calls us".
public enum Role: String, Sendable, CaseIterable, Codable {
    /// Web-form, SMS and chat gateways and the mail relay, pushing messages in.
    case gateway
    /// Claims tickets, drafts and sends replies, writes notes.
    case agent
    /// An agent who also approves replies, reassigns, and edits templates and rules.
    case supervisor
    /// Reads reports, ticket lists and the event feed; never writes.
    case dashboard
    /// The shop's order system: looks customers up and reads their history.
    case orderSystem = "order_system"
    /// Manages keys, agents, webhooks and settings.
    case admin

    /// Agents and supervisors act as a person, so their keys belong to an agent row.
    public var actsAsAgent: Bool { self == .agent || self == .supervisor }
}

/// The authenticated caller of one request.
public struct Principal: Sendable, Equatable {
    public var keyID: UUID
    public var name: String
    public var role: Role
    public var agentID: UUID?
}
