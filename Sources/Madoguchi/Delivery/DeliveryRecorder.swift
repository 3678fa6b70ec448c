import Foundation
import Logging
import PostgresNIO

/// Writes down what a delivery attempt came to, in one transaction: the outbox row (sent, failed,
/// queued again with backoff, or held), the reply's state, an SMS or LINE message's delivery report,
/// identities a relay refused for good, a ticket a failed reply leaves unanswered, and the events.
struct DeliveryRecorder: Sendable {
    let database: Database
    let logger: Logger
    let settings: DeliverySettings
    let worker: String

    /// The attempts of several deliveries, in one transaction. Should it fail, each is tried in a
    /// transaction of its own, so that one attempt that cannot be written does not leave the others'
    /// rows to lapse (past the handover, a lapsed row is held for a person).
    func record(_ batch: [Outcome]) async -> [Result<Void, any Error>] {
        do {
            try await database.withTransaction { connection in
                let plain = batch.map(\.isPlainSend)
                try await recordSent(zip(batch, plain).filter(\.1).map(\.0), on: connection)
                for (outcome, isPlain) in zip(batch, plain) where !isPlain { try await record(outcome.attempt, for: outcome.item, on: connection) }
            }
            return batch.map { _ in .success(()) }
        } catch where batch.count > 1 {
            var results: [Result<Void, any Error>] = []
            for outcome in batch {
                do {
                    try await database.withTransaction { connection in try await record(outcome.attempt, for: outcome.item, on: connection) }
                    results.append(.success(()))
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        } catch {
            return [.failure(error)]
        }
    }

    /// One delivery's attempt.
    struct Outcome: Sendable {
        var attempt: DeliveryAttempt
        var item: OutboxItem

        var results: [String: RecipientResult] { item.results.merging(attempt.recipients) { _, new in new } }

        /// A mail every recipient took: by far the most common outcome, written by the batch.
        var isPlainSend: Bool {
            guard attempt.kind == .answered && attempt.provider == nil && !item.recipients.isEmpty else { return false }
            // Merged once, not once per recipient.
            let results = results
            return item.recipients.allSatisfy { results[$0]?.status == .sent }
        }
    }

    /// Mails every recipient took, a statement per table for all of them: what `record(_:for:on:)`
    /// writes for such an attempt, row for row (the delivery tests read both paths).
    private func recordSent(_ batch: [Outcome], on connection: PostgresConnection) async throws {
        guard !batch.isEmpty else { return }
        let outcomes = Dictionary(batch.map { (OutboxStore.Claim(id: $0.item.id, attempt: $0.item.attempts), $0) }) { first, _ in first }
        let settled = try await OutboxStore(logger: logger).settleSent(
            outcomes.map { .init(claim: $0.key, results: $0.value.results, response: $0.value.attempt.response) }, worker: worker, on: connection)
        guard !settled.isEmpty else { return }
        let byReply = Dictionary(settled.compactMap { row in outcomes[row.claim].map { (row.replyID, $0) } }) { first, _ in first }
        // A mail's message shows its outbox row as its delivery (`Message.columns`); nothing to copy.
        try await ReplyStore(logger: logger).setState(.sent, of: settled.map(\.replyID), on: connection)
        try await EventStore(logger: logger).record(.replyDelivered, replies: settled.compactMap { row in
            byReply[row.replyID].map { outcome in
                (row.replyID, ["response": outcome.attempt.response ?? "", "attempts": outcome.item.attempts, "refused": [[String: String]]()] as [String: Any])
            }
        }, actor: nil, on: connection)
        try await TicketStore(logger: logger).clearDeliveryFailure(answeredBy: settled.map(\.replyID), on: connection)
    }

    private func record(_ attempt: DeliveryAttempt, for item: OutboxItem, on connection: PostgresConnection) async throws {
        // Another worker took the row over before the handover; it records what happens.
        guard attempt.kind != .abandoned else { return }
        let store = OutboxStore(logger: logger)
        if attempt.kind == .uncertain {
            let reason = attempt.error ?? "the handover got no answer"
            guard let replyID = try await store.settle(item.id, worker: worker, attempt: item.attempts, .init(
                state: "held", results: item.results.merging(attempt.recipients) { _, new in new }, error: reason, heldReason: reason),
                on: connection) else { return }
            // Recipients the relay refused for good before the dot are settled whatever became of
            // the mail: an address it said does not exist is marked, as it would have been.
            let refused = attempt.recipients.filter { $0.value.status == .failed && $0.value.undeliverable }.map { ($0.key, $0.value) }
            if !refused.isEmpty {
                let ticketID = try await ReplyStore(logger: logger).reply(id: replyID, on: connection).ticketID
                try await markUndeliverable(refused, channel: item.channel, customerTicket: ticketID, on: connection)
            }
            try await event(.replyHeld, replyID: replyID, data: ["reason": reason, "attempts": item.attempts], on: connection)
            // A person has to decide: the operator's log says so, not only the event feed.
            logger.warning("delivery held for a person", metadata: ["outbox_id": "\(item.id)", "reply_id": "\(replyID)", "reason": "\(reason)"])
            return
        }

        var results = item.results.merging(attempt.recipients) { _, new in new }
        let pending = item.recipients.filter { (results[$0]?.status ?? .pending) == .pending }
        if !pending.isEmpty && item.attemptsCounted < settings.maxAttempts {
            let delay = backoff(afterAttempt: item.attemptsCounted)
            _ = try await store.settle(item.id, worker: worker, attempt: item.attempts, .init(
                state: "queued", results: results, error: attempt.error, response: attempt.response, provider: attempt.provider,
                providerMessageID: attempt.providerMessageID, nextAttemptIn: delay), on: connection)
            logger.info("delivery deferred", metadata: ["outbox_id": "\(item.id)", "attempt": "\(item.attempts)", "retry_in": "\(delay)",
                                                        "reason": "\(attempt.error ?? "")"])
            return
        }
        for recipient in pending {
            results[recipient] = .failed("gave up after \(item.attempts) attempts: \(results[recipient]?.reply ?? attempt.error ?? "")")
        }
        let delivered = results.values.contains { $0.status == .sent }
        let failures = item.recipients.compactMap { recipient in results[recipient].flatMap { $0.status == .failed ? (recipient, $0) : nil } }
        guard let replyID = try await store.settle(item.id, worker: worker, attempt: item.attempts, .init(
            state: delivered ? "sent" : "failed", results: results, error: delivered ? nil : attempt.error ?? failures.first?.1.reply,
            response: attempt.response, provider: attempt.provider, providerMessageID: attempt.providerMessageID), on: connection)
        else { return }

        let reply = try await ReplyStore(logger: logger).setState(delivered ? .sent : .failed, of: replyID, on: connection)
        // A provider's message keeps the provider's id (its status callbacks name it) and report; a
        // mail's message shows its outbox row instead (`Message.columns`).
        // A text is `queued` until the SMS provider's status callbacks move it on; LINE and a chat
        // gateway send no callbacks, and their 200 is the send.
        var failedByReport = false
        if let messageID = reply.messageID, item.channel == .sms || item.channel == .chat {
            var report: [String: Any] = ["status": delivered ? (attempt.provider == nil || item.channel == .chat ? "sent" : "queued") : "failed",
                                         "updated_at": Date().rfc3339UTC]
            if let response = attempt.response { report["response"] = String(response.prefix(500)) }
            if !delivered { report["error"] = String((attempt.error ?? failures.first?.1.reply ?? "").prefix(500)) }
            try await MessageStore(logger: logger).recordSend(
                of: messageID, provider: attempt.provider, providerMessageID: attempt.providerMessageID, delivery: try JSONSerialization.text(report),
                on: connection)
            if item.channel == .sms, delivered, let provider = attempt.provider, let providerMessageID = attempt.providerMessageID {
                failedByReport = try await SmsDeliveryReports(database: database, logger: logger).applyReportsBeforeSend(
                    provider: provider, providerMessageID: providerMessageID, messageID: messageID, ticketID: reply.ticketID,
                    status: report["status"] as? String ?? "queued", on: connection)
            }
        }
        try await markUndeliverable(failures.filter { $0.1.undeliverable }, channel: item.channel, customerTicket: reply.ticketID, on: connection)
        // A provider's failure report that came before this send was recorded has just failed the
        // reply (its `reply.failed`, the ticket's flag): no `reply.delivered` after it, and the flag stays.
        if delivered, !failedByReport {
            try await event(.replyDelivered, replyID: replyID, data: [
                "response": attempt.response ?? "", "attempts": item.attempts,
                "refused": failures.map { ["recipient": $0.0, "reply": $0.1.reply] },
            ], on: connection)
            try await TicketStore(logger: logger).clearDeliveryFailure(answeredBy: [replyID], on: connection)
        } else if !delivered {
            let error = attempt.error ?? failures.first?.1.reply ?? "no recipient took it"
            try await event(.replyFailed, replyID: replyID, data: [
                "error": error, "attempts": item.attempts,
                "refused": failures.map { ["recipient": $0.0, "reply": $0.1.reply] },
            ], on: connection)
            logger.warning("delivery failed for good", metadata: ["outbox_id": "\(item.id)", "reply_id": "\(replyID)", "error": "\(error)"])
            try await TicketStore(logger: logger).withdrawResponse(ofReply: replyID, on: connection)
            try await TicketStore(logger: logger).flagDeliveryFailure(reply.ticketID, ofReply: replyID, on: connection)
        }
    }

    /// Doubles from `retryBase` to at most `retryCap`, less up to half at random, so that a relay
    /// coming back is not met by every deferred mail at the same instant.
    func backoff(afterAttempt attempt: Int) -> Duration {
        let base = settings.retryBase.seconds * pow(2, Double(max(0, attempt - 1)))
        let capped = min(base, settings.retryCap.seconds)
        return .milliseconds(Int64(capped * Double.random(in: 0.5...1.0) * 1000))
    }

    private func markUndeliverable(_ failures: [(String, RecipientResult)], channel: Channel, customerTicket: UUID, on connection: PostgresConnection) async throws {
        let kind: Customer.Identity.Kind = switch channel {
        case .email, .webform: .email
        case .sms: .phone
        case .chat: .line
        }
        let identities = IdentityStore(logger: logger)
        for (recipient, result) in failures {
            let value = kind == .email ? IdentityValue.comparable(recipient) : recipient
            for customerID in try await identities.markUndeliverable(kind: kind, value: value, reason: result.reply, on: connection) {
                try await EventStore(logger: logger).record(
                    .identityUndeliverable, ticketID: customerTicket, customerID: customerID, actor: nil,
                    data: ["kind": kind.rawValue, "value": value, "reason": result.reply, "source": "relay"], on: connection)
            }
        }
    }

    private func event(_ type: EventType, replyID: UUID, data: [String: Any], on connection: PostgresConnection) async throws {
        try await EventStore(logger: logger).record(type, reply: replyID, actor: nil, data: data, on: connection)
    }
}
