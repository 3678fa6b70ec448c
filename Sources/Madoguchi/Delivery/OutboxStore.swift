import Foundation
import Logging
import PostgresNIO

/// The one writer of `outbox`: each sent reply becomes one row, written in the transaction that sends
/// it, with the Message-ID fixed there, so that however often delivery is retried it is the same
/// mail. The delivery worker reads its rows from here.
struct OutboxStore: Sendable {
    let logger: Logger

    func enqueue(replyID: UUID, channel: Channel, recipients: [String], emailMessageID: String, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            INSERT INTO outbox (reply_id, channel, recipients, email_message_id)
            VALUES (\(replyID), \(channel.rawValue), \(recipients), \(emailMessageID))
            """, logger: logger)
    }

    /// A delay notice about the reply's mail, kept with its delivery. Only the latest 50 are kept: a
    /// relay that warns every four hours for days must not grow the row without end.
    func recordNotice(replyID: UUID, recipient: String, action: String, status: String?, diagnostic: String?,
                      on connection: PostgresConnection) async throws {
        // What a mail said, cleaned as every text from outside is (no NUL: jsonb refuses it).
        var notice: [String: Any] = ["recipient": Text.limit(Text.clean(recipient), 1000), "action": Text.limit(Text.clean(action), 40),
                                     "reported_at": Date().rfc3339UTC]
        if let status { notice["status"] = Text.limit(Text.clean(status), 40) }
        if let diagnostic { notice["diagnostic"] = Text.limit(Text.clean(diagnostic), 1000) }
        let json = "[" + (try JSONSerialization.text(notice)) + "]"
        try await connection.perform("""
            UPDATE outbox SET notices = (
                SELECT coalesce(jsonb_agg(n ORDER BY i), '[]'::jsonb)
                FROM jsonb_array_elements(notices || \(json)::jsonb) WITH ORDINALITY AS e(n, i)
                WHERE i > jsonb_array_length(notices || \(json)::jsonb) - 50)
            WHERE reply_id = \(replyID)
            """, logger: logger)
    }
}
