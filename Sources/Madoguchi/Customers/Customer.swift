import Foundation

/// A person or company writing to the support team, with every identity that reaches them.
public struct Customer: Sendable, Equatable {
    public var id: UUID
    public var displayName: String?
    public var isVIP: Bool
    public var notes: String?
    /// Set when this customer was merged into another; lookups follow it.
    public var mergedInto: UUID?
    public var identities: [Identity]
    public var createdAt: Date
    public var updatedAt: Date
    /// Raised by every change made through the API (migration 0087): the `ETag`.
    public var version: Int64 = 1

    public struct Identity: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case email, phone, external, line, chat
        }

        public var id: UUID
        public var kind: Kind
        public var value: String
        public var verified: Bool
        public var undeliverableReason: String?
        public var undeliverableAt: Date?
        public var createdAt: Date
    }
}
