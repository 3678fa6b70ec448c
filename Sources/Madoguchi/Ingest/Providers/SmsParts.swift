import Foundation
import Logging
import PostgresNIO

/// Long texts some providers deliver as separate parts (Vonage: `concat-ref`, `concat-part`,
/// `concat-total`). Each part is stored as it comes; the one that completes the set makes one
/// message of all of them, in part order. A set still incomplete after a while (a carrier lost a
/// part) is released as a message with the gap marked, so no text waits unseen (`releaseStale`,
/// run by `SmsPartsSweeper`).
struct SmsParts: Sendable {
    let database: Database
    let logger: Logger
    let sms: SmsIngest

    struct Part: Sendable {
        var reference: String
        var number: Int
        var count: Int
    }

    func receive(_ message: InboundSms, sender: SmsIngest.Sender, part: Part, request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let payloads = InboundPayloadStore(logger: logger)
        let (inboundID, event) = try await database.withTransaction { connection -> (UUID, ProviderEventAnswer) in
            let payloadID: UUID
            switch try await payloads.open(
                channel: .sms, provider: message.provider, providerMessageID: message.providerMessageID, idempotencyKey: nil,
                body: request.body, contentType: request.contentType ?? "", apiKeyID: nil, on: connection) {
            case .replay(let outcome):
                return (outcome.inboundID, .init(eventID: message.providerMessageID, type: "message", answer: .replayed(outcome)))
            case .fresh(let id, _):
                payloadID = id
            }
            try await AdvisoryLock.take("sms-parts:\(message.provider):\(sender.value):\(part.reference)", on: connection, logger: logger)
            try await connection.perform("""
                INSERT INTO sms_parts (provider, provider_message_id, sender, reference, part_count, part_number, body, inbound_payload_id)
                VALUES (\(message.provider), \(message.providerMessageID), \(sender.value), \(part.reference), \(part.count), \(part.number),
                        \(message.body), \(payloadID))
                ON CONFLICT (provider, provider_message_id) DO NOTHING
                """, logger: logger)
            // A retry of a part whose message was already assembled gets that message's answer.
            if let assembled = try await assembledMessage(of: message, on: connection),
               let answer = try await payloads.answer(forMessage: assembled, on: connection) {
                try await payloads.finish(payloadID, providerMessageID: message.providerMessageID, answer: .ingest(.replayed(answer)),
                                          messageID: assembled, on: connection)
                return (payloadID, .init(eventID: message.providerMessageID, type: "message", answer: .replayed(answer)))
            }
            var waiting = try await waitingParts(sender: sender.value, provider: message.provider, part: part, on: connection)
            // The sender may begin a new text under a reference an earlier, incomplete one still holds
            // (on most handsets a reference is one byte). Its parts are told apart from the earlier
            // ones by number (this part's number already waits under another provider id) or by
            // time (a carrier delivers one text's parts within seconds of each other): the earlier
            // parts become their own message, the gap marked, before this part is counted, so no
            // message mixes two texts.
            let arrivedAt = waiting.first { $0.providerMessageID == message.providerMessageID }?.receivedAt ?? Date()
            let others = waiting.filter { $0.providerMessageID != message.providerMessageID }
            let earlier: [(number: Int, body: String, providerMessageID: String, payloadID: UUID, receivedAt: Date)]
            if let clash = others.first(where: { $0.number == part.number }) {
                earlier = others.filter { $0.receivedAt <= clash.receivedAt.addingTimeInterval(Self.textSpan) }
            } else if let newest = others.map(\.receivedAt).max(), arrivedAt.timeIntervalSince(newest) > Self.textSpan {
                earlier = others
            } else {
                earlier = []
            }
            if !earlier.isEmpty {
                try await releaseIncomplete(earlier, provider: message.provider, sender: sender.value, part: part, on: connection)
                let released = Set(earlier.map(\.providerMessageID))
                waiting.removeAll { released.contains($0.providerMessageID) }
            }
            let arrived = Set(waiting.map(\.number)).count
            guard arrived == part.count else {
                var outcome = InboundOutcome(inboundID: payloadID, channel: .sms)
                outcome.flags = ["waiting-for-parts"]
                try await payloads.finish(payloadID, providerMessageID: message.providerMessageID, answer: .waitingForParts(outcome),
                                          messageID: nil, on: connection)
                return (payloadID, ProviderEventAnswer(
                    eventID: message.providerMessageID, type: "message", result: .waitingForParts,
                    detail: "Part \(part.number) of \(part.count) kept; \(arrived) of \(part.count) have arrived."))
            }
            let taken = try await complete(message, from: sender, part: part, parts: waiting, answering: payloadID,
                                           providerMessageID: message.providerMessageID, on: connection)
            return (payloadID, .init(eventID: message.providerMessageID, type: "message", answer: .taken(taken.outcome)))
        }
        return ProviderWebhookAnswer(inboundID: inboundID, provider: message.provider, events: [event])
    }

    /// The longest a carrier takes between the parts of one text, as far as telling two texts under
    /// one reference apart goes: parts further apart are taken for two texts.
    static let textSpan: TimeInterval = 120

    /// The mark for a part that never came.
    static let missingPart = "[…]"

    /// Makes a message of every set of parts whose newest part came longer than `wait` ago, the
    /// missing parts marked. Returns how many messages it made.
    func releaseStale(olderThan wait: Duration) async throws -> Int {
        let groups = try await database.withConnection { connection in
            let rows = try await connection.run("""
                SELECT provider, sender, reference, part_count FROM sms_parts
                WHERE message_id IS NULL
                GROUP BY provider, sender, reference, part_count
                HAVING max(received_at) < now() - make_interval(secs => \(Double(wait.components.seconds)))
                """, logger: logger)
            var groups: [(provider: String, sender: String, part: Part)] = []
            for try await (provider, sender, reference, count) in rows.decode((String, String, String, Int).self) {
                groups.append((provider, sender, Part(reference: reference, number: 0, count: count)))
            }
            return groups
        }
        var released = 0
        for group in groups where try await release(group.provider, sender: group.sender, part: group.part) { released += 1 }
        return released
    }

    private func release(_ provider: String, sender: String, part: Part) async throws -> Bool {
        try await database.withTransaction { connection in
            try await AdvisoryLock.take("sms-parts:\(provider):\(sender):\(part.reference)", on: connection, logger: logger)
            let waiting = try await waitingParts(sender: sender, provider: provider, part: part, on: connection)
            return try await releaseIncomplete(waiting, provider: provider, sender: sender, part: part, on: connection)
        }
    }

    /// One message of `waiting`, a set that will not be completed, the missing parts marked; the
    /// newest part's payload records its answer. false when there is nothing to release.
    @discardableResult
    private func releaseIncomplete(
        _ waiting: [(number: Int, body: String, providerMessageID: String, payloadID: UUID, receivedAt: Date)],
        provider: String, sender: String, part: Part, on connection: PostgresConnection
    ) async throws -> Bool {
        guard let first = waiting.first, let last = waiting.max(by: { $0.receivedAt < $1.receivedAt }) else { return false }
        let isPhoneNumber = if case .valid = PhoneNumber.normalize(sender) { true } else { false }
        let taken = try await complete(
            InboundSms(provider: provider, providerMessageID: first.providerMessageID, from: sender, to: nil, body: ""),
            from: .init(value: sender, isPhoneNumber: isPhoneNumber), part: part, parts: waiting, answering: last.payloadID,
            providerMessageID: last.providerMessageID, on: connection)
        logger.notice("released an incomplete multi-part SMS", metadata: ["message_id": "\(taken.messageID)", "parts": "\(waiting.count)/\(part.count)"])
        return true
    }

    /// One message of the waiting `parts` (the first copy of each part number, in order, a missing
    /// one marked), under the lowest part's id; those parts (and no later set's under the same
    /// reference) point at it, and the payload `answering` records its answer, which every later
    /// retry of any of them gets.
    private func complete(
        _ base: InboundSms, from sender: SmsIngest.Sender, part: Part,
        parts: [(number: Int, body: String, providerMessageID: String, payloadID: UUID, receivedAt: Date)],
        answering payloadID: UUID, providerMessageID: String, on connection: PostgresConnection
    ) async throws -> (messageID: UUID, outcome: InboundOutcome) {
        let texts = Dictionary(parts.map { ($0.number, $0.body) }, uniquingKeysWith: { first, _ in first })
        var whole = base
        whole.body = (1...part.count).map { texts[$0] ?? Self.missingPart }.joined()
        whole.providerMessageID = parts.first?.providerMessageID ?? base.providerMessageID
        whole.details["parts"] = String(part.count)
        whole.details["concat_ref"] = part.reference
        let missing = (1...part.count).filter { texts[$0] == nil }
        if !missing.isEmpty { whole.details["missing_parts"] = missing.map(String.init).joined(separator: ",") }
        let taken = try await sms.take(whole, from: sender, payloadID: payloadID, on: connection)
        try await connection.perform("""
            UPDATE sms_parts SET message_id = \(taken.messageID)
            WHERE provider = \(base.provider) AND sender = \(sender.value) AND reference = \(part.reference)
              AND part_count = \(part.count) AND message_id IS NULL AND provider_message_id = ANY(\(parts.map(\.providerMessageID)))
            """, logger: logger)
        try await InboundPayloadStore(logger: logger).finish(
            payloadID, providerMessageID: providerMessageID, answer: .ingest(.taken(taken.outcome)), messageID: taken.messageID, on: connection)
        return taken
    }

    private func assembledMessage(of message: InboundSms, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.run("""
            SELECT message_id FROM sms_parts WHERE provider = \(message.provider) AND provider_message_id = \(message.providerMessageID)
            """, logger: logger)
        for try await id in rows.decode(UUID?.self) { return id }
        return nil
    }

    private func waitingParts(
        sender: String, provider: String, part: Part, on connection: PostgresConnection
    ) async throws -> [(number: Int, body: String, providerMessageID: String, payloadID: UUID, receivedAt: Date)] {
        let rows = try await connection.run("""
            SELECT part_number, body, provider_message_id, inbound_payload_id, received_at FROM sms_parts
            WHERE provider = \(provider) AND sender = \(sender) AND reference = \(part.reference) AND part_count = \(part.count)
              AND message_id IS NULL
            ORDER BY part_number, received_at
            """, logger: logger)
        var parts: [(Int, String, String, UUID, Date)] = []
        for try await row in rows.decode((Int, String, String, UUID, Date).self) { parts.append(row) }
        return parts
    }
}
