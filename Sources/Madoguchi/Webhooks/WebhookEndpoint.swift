import Foundation
import PostgresNIO

/// A subscriber to the event feed: where to post, which event types, where it is in the feed.
struct WebhookEndpoint: Sendable {
    var id: UUID
    var url: String
    var description: String?
    /// Empty: every type.
    var eventTypes: [String]
    var secrets: [String]
    var active: Bool
    var disabledReason: String?
    var disabledAt: Date?
    var failureStreak: Int
    var cursor: FeedCursor
    var nextAttemptAt: Date
    var createdAt: Date
    var updatedAt: Date

    static let columns = """
        id, url, description, event_types, secrets, active, disabled_reason, disabled_at, failure_streak, cursor_xid::text AS cursor_xid_text,
        cursor_event, next_attempt_at, created_at, updated_at
        """

    init(row: PostgresRow) throws {
        let (id, url, description, types, secrets, active, reason, disabledAt, streak, xid, event, next, created, updated) = try row.decode(
            (UUID, String, String?, [String], [String], Bool, String?, Date?, Int, String, Int64, Date, Date, Date).self)
        self.init(id: id, url: url, description: description, eventTypes: types, secrets: secrets, active: active, disabledReason: reason,
                  disabledAt: disabledAt, failureStreak: streak, cursor: FeedCursor(xid: UInt64(xid) ?? 0, eventID: event), nextAttemptAt: next,
                  createdAt: created, updatedAt: updated)
    }

    init(id: UUID, url: String, description: String?, eventTypes: [String], secrets: [String], active: Bool, disabledReason: String?,
         disabledAt: Date?, failureStreak: Int, cursor: FeedCursor, nextAttemptAt: Date, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.url = url
        self.description = description
        self.eventTypes = eventTypes
        self.secrets = secrets
        self.active = active
        self.disabledReason = disabledReason
        self.disabledAt = disabledAt
        self.failureStreak = failureStreak
        self.cursor = cursor
        self.nextAttemptAt = nextAttemptAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    var filter: EventFeed.Filter { EventFeed.Filter(types: eventTypes.isEmpty ? nil : eventTypes) }
}

/// One attempt to deliver one event to one endpoint.
struct WebhookDelivery: Sendable {
    var id: UUID
    var endpointID: UUID
    var eventID: Int64
    var webhookID: String
    var attempt: Int
    var status: Int?
    var error: String?
    var durationMilliseconds: Int
    var manual: Bool
    var createdAt: Date

    static let columns = "id, endpoint_id, event_id, webhook_id, attempt, status, error, duration_ms, manual, created_at"

    init(row: PostgresRow) throws {
        (id, endpointID, eventID, webhookID, attempt, status, error, durationMilliseconds, manual, createdAt) = try row.decode(
            (UUID, UUID, Int64, String, Int, Int?, String?, Int, Bool, Date).self)
    }
}
