import Foundation
import Logging
import PostgresNIO

/// Appends to `events`. Always called inside the transaction that makes the change it records, so
/// the feed never shows a change that rolled back nor misses one that committed.
struct EventStore: Sendable {
    let logger: Logger

    func record(
        _ type: String,
        ticketID: UUID? = nil,
        customerID: UUID? = nil,
        messageID: UUID? = nil,
        actor: Principal?,
        data: [String: Any] = [:],
        on connection: PostgresConnection
    ) async throws {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys]), as: UTF8.self)
        try await connection.query("""
            INSERT INTO events (type, ticket_id, customer_id, message_id, actor_key_id, actor_agent_id, data)
            VALUES (\(type), \(ticketID), \(customerID), \(messageID), \(actor?.keyID), \(actor?.agentID), \(json)::jsonb)
            """, logger: logger)
    }
}
