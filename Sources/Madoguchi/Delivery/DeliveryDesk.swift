import Foundation
import Logging
import MadoguchiMail
import PostgresNIO

/// What people and incoming mail do to deliveries after the worker is done: a supervisor decides a
/// held delivery; a bounce for one of our replies marks it bounced.
struct DeliveryDesk: Sendable {
    let database: Database
    let logger: Logger

    enum Decision: String, Sendable {
        /// Nothing reached the relay (its log says so): queue it again with the same Message-ID.
        case resend
        /// It did: record it as sent.
        case markSent = "mark_sent"
        /// Give it up; the reply is failed and its ticket flagged.
        case cancel
    }

    func resolveHeld(replyID: UUID, decision: Decision, comment: String?, by principal: Principal) async throws -> Reply {
        try await database.withTransaction { connection in
            let replies = ReplyStore(logger: logger)
            let current = try await replies.reply(id: replyID, on: connection)
            _ = try await TicketStore(logger: logger).lock(current.ticketID, on: connection)
            let store = OutboxStore(logger: logger)
            guard let row = try await store.lock(replyID: replyID, on: connection), row.state == "held" else {
                let state = try await store.lock(replyID: replyID, on: connection)?.state ?? "not sent"
                throw Problem(.deliveryNotHeld, status: .conflict, title: "Delivery not held",
                              detail: "The reply's delivery is \(state); only a held delivery waits for a decision.")
            }
            var reply = current
            switch decision {
            case .resend:
                try await store.resolveHeld(row.id, to: "queued", on: connection)
            case .markSent:
                try await store.resolveHeld(row.id, to: "sent", on: connection)
                try await store.settlePending(row.id, as: .sent(comment.map { "marked sent: \($0)" } ?? "marked sent by a supervisor"), on: connection)
                reply = try await replies.setState(.sent, of: replyID, on: connection)
            case .cancel:
                try await store.resolveHeld(row.id, to: "cancelled", on: connection)
                // A bounce that came first said it already, and did the rest: it stays the word.
                if current.state != .bounced {
                    reply = try await replies.setState(.failed, of: replyID, on: connection)
                    try await TicketStore(logger: logger).withdrawResponse(ofReply: replyID, on: connection)
                    try await TicketStore(logger: logger).flagDeliveryFailure(reply.ticketID, ofReply: reply.id, cancelled: true, on: connection)
                }
            }
            try await recordEvent(.replyDeliveryResolved, reply: reply, data: ["decision": decision.rawValue, "comment": comment ?? ""], actor: principal,
                                  on: connection)
            return reply
        }
    }

    /// A bounce names the Message-ID of one of our replies: the relay took it, the recipient's server
    /// did not, for good. The reply is bounced (its message shows it), and its ticket is flagged, so
    /// that someone answers another way (a hard bounce's identity was already marked undeliverable by
    /// ingest; a full mailbox or a filter leaves the address as it is).
    ///
    /// The ticket is locked before the reply, the order a supervisor deciding a held delivery keeps:
    /// with the reply first, a bounce arriving while a supervisor marks the same held reply sent
    /// deadlocked with it. (The worker's failure path still writes the reply before the ticket; a
    /// bounce of an earlier attempt meeting a resend's final failure could still meet it there.)
    /// The report's words for each recipient it names are kept on the delivery (`failed` notices):
    /// the reply shows whom it failed to reach and why, not only the relay's 250 of before.
    func recordBounce(originalMessageID: String, failures: [DeliveryReport.Recipient], on connection: PostgresConnection) async throws {
        let replies = ReplyStore(logger: logger)
        for found in try await repliesSent(as: originalMessageID, lock: false, on: connection) where found.state != .bounced {
            // Only a failure of someone the reply went to bounces it.
            let addressees = Self.addressees(of: found)
            let theirs = failures.filter { $0.addresses.contains { addressees.contains(IdentityValue.comparable($0)) } }
            guard !theirs.isEmpty else { continue }
            // Waited for as long as it takes (not `TicketStore.lock`'s two seconds): the report is
            // stored in this transaction, and mail is not turned away for a busy ticket. NO KEY
            // UPDATE, what the flag's own UPDATE takes: the delivery recorder, which locks a reply
            // before it takes a key-share lock on the ticket, is not waited on here.
            try await connection.perform("SELECT 1 FROM tickets WHERE id = \(found.ticketID) FOR NO KEY UPDATE", logger: logger)
            let reply = try await replies.reply(id: found.id, lock: true, on: connection)
            guard reply.state != .bounced else { continue }
            // Its message shows `bounced` from the reply's state (`Message.columns`).
            let bounced = try await replies.setState(.bounced, of: reply.id, on: connection)
            for failure in theirs {
                // Under the address the reply went to (a forward's report names where it led, too).
                let sentTo = reply.recipients.first { sent in failure.addresses.contains { Self.sameMailbox(sent, $0) } } ?? failure.address
                try await OutboxStore(logger: logger).recordNotice(replyID: reply.id, recipient: sentTo, action: "failed", status: failure.status,
                                                                   diagnostic: failure.diagnostic ?? failure.reason, on: connection)
            }
            try await TicketStore(logger: logger).withdrawResponse(ofReply: reply.id, on: connection)
            try await TicketStore(logger: logger).flagDeliveryFailure(reply.ticketID, ofReply: reply.id, on: connection)
            try await recordEvent(.replyBounced, reply: bounced, data: ["recipients": failures.flatMap(\.addresses)], actor: nil, on: connection)
        }
    }

    /// A delay notice for one of our replies: recorded on its delivery, nothing more. The reply stays
    /// sent, nobody is marked undeliverable, and a later bounce or nothing at all settles it.
    func recordDelay(originalMessageID: String, recipients: [DeliveryReport.Recipient], on connection: PostgresConnection) async throws {
        let outbox = OutboxStore(logger: logger)
        for reply in try await repliesSent(as: originalMessageID, lock: false, on: connection) {
            // Only notices about someone the reply went to.
            let addressees = Self.addressees(of: reply)
            for recipient in recipients where addressees.contains(IdentityValue.comparable(recipient.address)) {
                try await outbox.recordNotice(replyID: reply.id, recipient: recipient.address, action: recipient.action, status: recipient.status,
                                              diagnostic: recipient.diagnostic, on: connection)
            }
        }
    }

    /// The replies whose outbound mail carried this Message-ID (what a report names as the original).
    private func repliesSent(as emailMessageID: String, lock: Bool, on connection: PostgresConnection) async throws -> [Reply] {
        let replyIDs = try await connection.rows("""
            SELECT r.id FROM messages m JOIN replies r ON r.message_id = m.id
            WHERE m.email_message_id = \(emailMessageID) AND m.direction = 'outbound'
            """, preparedAs: RepliesSent.self, logger: logger).map { try $0.decode(UUID.self) }
        let replies = ReplyStore(logger: logger)
        var found: [Reply] = []
        for replyID in replyIDs { found.append(try await replies.reply(id: replyID, lock: lock, on: connection)) }
        return found
    }

    /// Every bounce and delay notice that names a Message-ID asks.
    private enum RepliesSent: PreparedSite { static let name = "madoguchi_replies_sent_as" }

    /// Whom the reply went to, as identities compare.
    /// Each in the form the mail went out in as well (`IDNA`): a relay reports `taro@xn--wgv71a119e.jp`
    /// for a reply to `taro@日本語.jp`.
    private static func addressees(of reply: Reply) -> Set<String> {
        Set(reply.recipients.flatMap { [IdentityValue.comparable($0), IdentityValue.comparable(IDNA.asciiAddress($0))] })
    }

    /// The addresses, as stored, that the replies sent as `emailMessageID` went to: the identities a
    /// hard bounce for one of them marks, whichever spelling of its domain the report uses
    /// (`sameMailbox`).
    func storedRecipients(sentAs emailMessageID: String, on connection: PostgresConnection) async throws -> [String] {
        try await repliesSent(as: emailMessageID, lock: false, on: connection).flatMap(\.recipients)
    }

    /// One mailbox, however its domain is spelled (`IDNA`: an A-label, full-width letters).
    static func sameMailbox(_ one: String, _ other: String) -> Bool {
        IdentityValue.comparable(IDNA.asciiAddress(one)) == IdentityValue.comparable(IDNA.asciiAddress(other))
    }

    private func recordEvent(_ type: EventType, reply: Reply, data: [String: Any], actor: Principal?, on connection: PostgresConnection) async throws {
        try await EventStore(logger: logger).record(type, reply: reply.id, actor: actor, data: data, on: connection)
    }
}
