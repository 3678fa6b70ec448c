import Foundation
import Logging
import PostgresNIO

/// The one writer of `outbox`: each sent reply becomes one row, written in the transaction that sends
/// it, with the Message-ID fixed there, so that however often delivery is retried it is the same
/// mail. The delivery worker reads its rows from here.
struct OutboxStore: Sendable {
    let logger: Logger

    func enqueue(replyID: UUID, channel: Channel, recipients: [String], emailMessageID: String, on connection: PostgresConnection) async throws {
        try await connection.query("""
            INSERT INTO outbox (reply_id, channel, recipients, email_message_id)
            VALUES (\(replyID), \(channel.rawValue), \(recipients), \(emailMessageID))
            """, logger: logger)
    }
}
