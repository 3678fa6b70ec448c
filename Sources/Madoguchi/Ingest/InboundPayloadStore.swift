import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The SQL behind `inbound_payloads`: every request body a gateway pushes in, kept byte for byte with
/// the answer it got, so a retry is answered the same way and nothing is ever lost.
struct InboundPayloadStore: Sendable {
    let logger: Logger

    typealias Outcome = InboundOutcome

    struct Prior: Sendable {
        let id: UUID
        let fingerprint: [UInt8]?
        let outcome: Outcome?
    }

    /// The answer a payload got, as it is kept: `response_status` holds the status code the API
    /// answered it with, so that a replay is answered alike and operators can read the table.
    enum StoredAnswer: Sendable {
        case ingest(IngestAnswer)
        /// One part of a multi-part SMS, kept until the rest arrive (`202`).
        case waitingForParts(InboundOutcome)
        /// A provider webhook's per-event answer (`200`: providers retry anything else).
        case webhook(ProviderWebhookAnswer)

        var responseStatus: Int16 {
            switch self {
            case .ingest(.taken): 201
            case .ingest(.replayed), .webhook: 200
            case .ingest(.keptUnreadable), .waitingForParts: 202
            }
        }

        var parseError: String? {
            if case .ingest(.keptUnreadable(let outcome)) = self { return outcome.parseError ?? "unreadable" }
            return nil
        }

        func json() throws -> String {
            let encoder = JSONEncoder.sorted
            return switch self {
            case .ingest(let answer): String(decoding: try encoder.encode(answer.outcome), as: UTF8.self)
            case .waitingForParts(let outcome): String(decoding: try encoder.encode(outcome), as: UTF8.self)
            case .webhook(let answer): String(decoding: try encoder.encode(answer), as: UTF8.self)
            }
        }
    }

    /// Serializes every request carrying this key (in the caller's transaction), so two concurrent
    /// retries cannot both miss each other's row.
    func lockIdempotencyKey(_ key: String, channel: Channel, apiKeyID: UUID?, on connection: PostgresConnection) async throws {
        try await AdvisoryLock.take("idempotency:\(channel.rawValue):\(apiKeyID?.uuidString ?? "-"):\(key)", on: connection, logger: logger)
    }

    /// The first answer, when this `Idempotency-Key` came before with these bytes; a 422 when it came
    /// with other bytes; nil for a new key. Holds the key's lock for the rest of the transaction.
    func replay(idempotencyKey key: String?, channel: Channel, apiKeyID: UUID?, body: [UInt8], on connection: PostgresConnection) async throws -> Outcome? {
        guard let key else { return nil }
        try await lockIdempotencyKey(key, channel: channel, apiKeyID: apiKeyID, on: connection)
        guard let prior = try await prior(idempotencyKey: key, channel: channel, apiKeyID: apiKeyID, on: connection) else { return nil }
        guard prior.fingerprint == Array(SHA256.hash(data: body)) else {
            throw Problem(.idempotencyKeyReused, status: .unprocessableContent, title: "Idempotency key reused",
                          detail: "Idempotency-Key '\(key)' was used before with a different body (inbound \(prior.id.uuidString.lowercased())). Use a new key for a new request.")
        }
        return prior.outcome
    }

    func prior(idempotencyKey key: String, channel: Channel, apiKeyID: UUID?, on connection: PostgresConnection) async throws -> Prior? {
        let rows = try await connection.run("""
            SELECT id, request_fingerprint, response_body::text
            FROM inbound_payloads
            WHERE channel = \(channel.rawValue) AND api_key_id IS NOT DISTINCT FROM \(apiKeyID) AND idempotency_key = \(key)
              AND parse_status <> 'rejected'
            """, logger: logger)
        for try await (id, fingerprint, body) in rows.decode((UUID, ByteBuffer?, String?).self) {
            return Prior(id: id, fingerprint: fingerprint.map { Array(buffer: $0) }, outcome: try body.map(Self.decodeOutcome))
        }
        return nil
    }

    /// Writes the raw request first; the caller's transaction then adds whatever it produces.
    /// `thenLock`: `AdvisoryLock` keys taken in the same statement, in their order, right after the
    /// row is written (the message's provider id, then the sender's identities): a round trip
    /// fewer for each.
    func insert(
        channel: Channel, provider: String = "", idempotencyKey: String?, body: [UInt8], contentType: String?,
        apiKeyID: UUID?, thenLock lockKeys: [String] = [], on connection: PostgresConnection
    ) async throws -> UUID {
        let fingerprint = idempotencyKey.map { _ in ByteBuffer(bytes: SHA256.hash(data: body)) }
        let rows = try await connection.rows("""
            WITH stored AS (
                INSERT INTO inbound_payloads (channel, provider, idempotency_key, request_fingerprint, api_key_id, content_type, body)
                VALUES (\(channel.rawValue), \(provider), \(idempotencyKey), \(fingerprint), \(apiKeyID), \(contentType), \(ByteBuffer(bytes: body)))
                RETURNING id
            )
            SELECT stored.id FROM stored, LATERAL (
                SELECT count(*) FROM (
                    SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
                    FROM unnest(\(lockKeys)::text[]) WITH ORDINALITY AS keys(key, n)
                    ORDER BY n
                ) AS taken
            ) AS locked
            """, preparedAs: InsertPayload.self, logger: logger)
        guard let row = rows.first else { throw RowNotFound("INSERT INTO inbound_payloads … RETURNING id") }
        return try row.decode(UUID.self)
    }

    /// Every request that comes in is stored through `insert`, and looked up by `firstAnswer`.
    private enum InsertPayload: PreparedSite { static let name = "madoguchi_insert_payload" }
    private enum FirstAnswer: PreparedSite { static let name = "madoguchi_first_answer" }
    private enum EarlierMessage: PreparedSite { static let name = "madoguchi_earlier_message" }

    enum Opening: Sendable {
        /// Already taken in: the first answer, to give again with 200.
        case replay(Outcome)
        /// New: the stored payload's id. The provider's message id and the sender's identities stay
        /// locked until commit; the identities' owners were read under those locks.
        case fresh(UUID, owners: IdentityStore.OwnersRead)
    }

    /// The start every JSON gateway shares, in the caller's transaction: a replayed
    /// `Idempotency-Key` answers at once; otherwise the raw body is stored, the provider's message id
    /// is locked, and a message already taken in under it is answered with its first answer (the
    /// retry's bytes stay stored, with that answer).
    /// `senderIdentities`: the sender's identities; their locks are taken with the provider message
    /// id's (in `IdentityStore.lockKeys` order, as the intake would take them) and their owners read
    /// with the replay lookup. `sender`: the sender as its message records it, compared with the
    /// first message's when the identities are not given (a chat's, locked later with its conversation).
    func open(
        channel: Channel, provider: String, providerMessageID: String, idempotencyKey: String?, body: [UInt8],
        contentType: String = "application/json", apiKeyID: UUID?, senderIdentities: [(kind: Customer.Identity.Kind, value: String)] = [],
        sender: String? = nil, text: String? = nil, on connection: PostgresConnection
    ) async throws -> Opening {
        if let outcome = try await replay(idempotencyKey: idempotencyKey, channel: channel, apiKeyID: apiKeyID, body: body, on: connection) {
            return .replay(outcome)
        }
        let payloadID = try await insert(
            channel: channel, provider: provider, idempotencyKey: idempotencyKey, body: body, contentType: contentType,
            apiKeyID: apiKeyID, thenLock: [Self.messageLockKey(channel: channel, provider: provider, providerMessageID: providerMessageID)]
                + IdentityStore.lockKeys(senderIdentities),
            on: connection)
        let read = try await firstAnswer(
            channel: channel, provider: provider, providerMessageID: providerMessageID, excluding: payloadID,
            ownersOf: senderIdentities, on: connection)
        if let earlier = read.first {
            // From someone else, it is not a retry: a gateway numbering submissions afresh (another
            // site's form), or reusing ids. Said so, rather than answered with another sender's
            // message as if this one had been taken in.
            let senders = senderIdentities.map(\.value) + [sender].compactMap { $0 }
            func reused(_ how: String) -> Problem {
                Problem(.providerMessageIDReused, status: .unprocessableContent, title: "Message id reused",
                        detail: "Message id '\(providerMessageID)' (\(provider)) was taken in before \(how); "
                          + "nothing was stored. Ids must be unique per \(channel == .webform ? "form" : "provider").")
            }
            if let firstSender = read.firstSender, !senders.isEmpty,
               !senders.contains(where: { $0.lowercased() == firstSender.lowercased() }) {
                throw reused("from another sender")
            }
            // Other words under the same id are another message, whoever sent them (a form whose
            // counter started again; a first submission with no contact to compare): answered as a
            // retry, it was never stored, and the gateway was told it had been.
            if let text, let firstText = read.firstText, text != firstText { throw reused("with other text") }
            try await finish(payloadID, providerMessageID: providerMessageID, answer: .ingest(.replayed(earlier.outcome)),
                             messageID: earlier.messageID, on: connection)
            return .replay(earlier.outcome)
        }
        // Taken in through another route (a provider's own webhook, whose payload names no single
        // message): that message is the answer, not a second one.
        if read.messageExists,
           let outcome = try await earlierMessage(channel: channel, provider: provider, providerMessageID: providerMessageID, on: connection) {
            try await finish(payloadID, providerMessageID: providerMessageID, answer: .ingest(.replayed(outcome)),
                             messageID: outcome.messageID, on: connection)
            return .replay(outcome)
        }
        return .fresh(payloadID, owners: IdentityStore.OwnersRead(senderIdentities, read.owners))
    }

    /// The advisory lock that serializes every attempt to take in one provider message, whichever
    /// route it comes by.
    static func messageLockKey(channel: Channel, provider: String, providerMessageID: String) -> String {
        "\(channel.rawValue):\(provider):\(providerMessageID)"
    }

    /// The customer's message already taken in with this provider id, as ingest answers for it (the
    /// ticket's status as it is now); nil when there is none.
    func earlierMessage(channel: Channel, provider: String, providerMessageID: String, on connection: PostgresConnection) async throws -> InboundOutcome? {
        // Prepared: every LINE message event asks it (was it relayed through the gateway first?).
        let rows = try await connection.rows("""
            SELECT m.id, m.inbound_payload_id, m.customer_id, m.threading_reason, t.id, t.number, t.customer_id, t.status
            FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE m.channel = \(channel.rawValue) AND m.provider = \(provider) AND m.provider_message_id = \(providerMessageID)
              AND m.direction = 'inbound'
            """, preparedAs: EarlierMessage.self, logger: logger)
        for row in rows {
            let (messageID, payloadID, customerID, reason, ticketID, number, ticketCustomer, status) =
                try row.decode((UUID, UUID?, UUID?, String?, UUID, Int64, UUID, String).self)
            var outcome = InboundOutcome(inboundID: payloadID ?? messageID, channel: channel)
            outcome.classification = .customer
            outcome.took(message: messageID, on: .init(id: ticketID, number: number, customerID: ticketCustomer, status: try Ticket.enumeration(status)),
                         customerID: customerID ?? ticketCustomer)
            outcome.threadingReason = reason
            return outcome
        }
        return nil
    }

    /// Whether a payload taken in before under this provider message id holds exactly `body`: a
    /// retry of that delivery, not another message under a reused id.
    func hasPayload(
        channel: Channel, provider: String, providerMessageID: String, excluding payloadID: UUID, body: [UInt8], on connection: PostgresConnection
    ) async throws -> Bool {
        let rows = try await connection.run("""
            SELECT EXISTS (SELECT 1 FROM inbound_payloads
                           WHERE channel = \(channel.rawValue) AND provider = \(provider) AND provider_message_id = \(providerMessageID)
                             AND id <> \(payloadID) AND body = \(ByteBuffer(bytes: body)))
            """, logger: logger)
        for try await found in rows.decode(Bool.self) { return found }
        return false
    }

    /// The answer the first delivery of this provider message got, if one was taken in, and in the
    /// same statement the owners of the sender's `identities` (`identity_owners`; see
    /// `IdentityStore.OwnersRead`), in their order, and the messages a mail's thread headers name
    /// (`threadIDs`: its In-Reply-To and References; `email_thread_matches`, `EmailThreader.HeaderMatch`). For a caller that
    /// already holds the message's lock and the identities' (taken with the payload's insert): the
    /// reads a message needs after its locks, in one round trip.
    func firstAnswer(
        channel: Channel, provider: String, providerMessageID: String, excluding payloadID: UUID,
        ownersOf identities: [(kind: Customer.Identity.Kind, value: String)], threadIDs: [String] = [], on connection: PostgresConnection
    ) async throws -> FirstRead {
        // One row per identity (one row when there is none), the first answer and the thread's
        // messages repeated on each.
        let rows = try await connection.rows("""
            SELECT first.message_id, first.response_body, sender.n, sender.customer_id, sender.live,
                   email_thread_matches(\(threadIDs)::text[])::text, sender.undeliverable,
                   -- An agent's forward is stored as its original sender's, and retried by the agent;
                   -- a web form's mail as its customer's, and retried by the form (`FormRelay`).
                   (SELECT coalesce(m.metadata->'forwarded_by'->>'address', m.metadata->>'relayed_by', m.from_address)
                    FROM messages m WHERE m.id = first.message_id),
                   (SELECT m.visible_text FROM messages m WHERE m.id = first.message_id),
                   EXISTS (SELECT 1 FROM messages m WHERE m.channel = \(channel.rawValue) AND m.provider = \(provider)
                           AND m.provider_message_id = \(providerMessageID) AND m.direction = 'inbound')
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL (
                SELECT message_id, response_body::text AS response_body FROM inbound_payloads
                WHERE channel = \(channel.rawValue) AND provider = \(provider) AND provider_message_id = \(providerMessageID)
                  AND parse_status = 'parsed' AND response_status = 201 AND id <> \(payloadID)
                ORDER BY received_at LIMIT 1
            ) AS first ON true
            LEFT JOIN LATERAL identity_owners(\(identities.map(\.kind.rawValue))::text[], \(identities.map(\.value))::text[]) AS sender ON true
            ORDER BY sender.n
            """, preparedAs: FirstAnswer.self, logger: logger)
        var read = FirstRead(owners: [IdentityStore.Owner?](repeating: nil, count: identities.count))
        for row in rows {
            let (messageID, body, position, customerID, live, matches, undeliverable, from, firstText, taken) =
                try row.decode((UUID?, String?, Int64?, UUID?, Bool?, String?, Bool?, String?, String?, Bool).self)
            read.messageExists = taken
            if read.first == nil, let body {
                read.first = (messageID, try Self.decodeOutcome(body))
                read.firstSender = from
                read.firstText = firstText
            }
            IdentityStore.Owner.place(position: position, customerID: customerID, live: live, in: &read.owners)
            if undeliverable == true, let position { read.undeliverable.insert(Int(position) - 1) }
            if read.threadMatches.isEmpty, let matches { read.threadMatches = try EmailThreader.HeaderMatch.decode(matches) }
        }
        return read
    }

    /// What `firstAnswer` read.
    struct FirstRead: Sendable {
        var first: (messageID: UUID?, outcome: Outcome)?
        /// Who the first one's message came from, when it made one with a sender.
        var firstSender: String?
        /// What its customer wrote (`visible_text`), when it made a message.
        var firstText: String?
        /// Whether a customer's message with this provider id exists, however it came in.
        var messageExists = false
        var owners: [IdentityStore.Owner?]
        var threadMatches: [EmailThreader.HeaderMatch] = []
        /// The positions (in `ownersOf`) of identities marked undeliverable.
        var undeliverable: Set<Int> = []
    }

    /// Records what the payload became and the answer given, for replays and `GET /v1/inbound/{id}`.
    /// The last write of an ingest: the events its transaction held back go in the same statement.
    func finish(_ id: UUID, providerMessageID: String?, answer: StoredAnswer, messageID: UUID?, on connection: PostgresConnection) async throws {
        let parseError = answer.parseError
        try await EventStore(logger: logger).writeHeldBack(with: """
            UPDATE inbound_payloads
            SET parse_status = \(parseError == nil ? "parsed" : "failed"), parse_error = \(parseError),
                provider_message_id = \(providerMessageID), response_status = \(answer.responseStatus)::int8,
                response_body = \(try answer.json())::text::jsonb, message_id = \(messageID), processed_at = now()
            WHERE id = \(id)
            """, preparedAs: (Finish.self, FinishWithEvents.self), on: connection)
    }

    /// Every request's last write goes through `finish`, with the events its transaction made or alone.
    private enum Finish: PreparedSite { static let name = "madoguchi_finish_payload" }
    private enum FinishWithEvents: PreparedSite { static let name = "madoguchi_finish_payload_with_events" }

    /// Keeps a request that was refused (`rejected`: its signature did not verify) or could not be read
    /// (`failed`), in a transaction of its own, with the reason: the record of what came in, and
    /// nothing else written.
    func keepUnused(
        channel: Channel, provider: String, body: [UInt8], contentType: String?, rejected: Bool, reason: String,
        on connection: PostgresConnection
    ) async throws -> UUID {
        let rows = try await connection.run("""
            INSERT INTO inbound_payloads (channel, provider, content_type, body, parse_status, parse_error, processed_at)
            VALUES (\(channel.rawValue), \(provider), \(contentType.map { String($0.prefix(255)) }), \(ByteBuffer(bytes: body)),
                    \(rejected ? "rejected" : "failed"), \(reason), now())
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        throw RowNotFound("INSERT INTO inbound_payloads … RETURNING id")
    }

    /// Removes refused requests (`rejected`) received more than `days` ago, ten thousand to a
    /// transaction so that no removal holds many locks for long; how many went.
    func removeRejected(olderThanDays days: Int, database: Database) async throws -> Int {
        var removed = 0
        while true {
            let batch = try await database.withConnection { connection in
                let rows = try await connection.run("""
                    DELETE FROM inbound_payloads WHERE id IN (
                        SELECT id FROM inbound_payloads
                        WHERE parse_status = 'rejected' AND received_at < now() - make_interval(days => \(days)::int)
                        LIMIT 10000)
                    RETURNING 1
                    """, logger: logger)
                var count = 0
                for try await _ in rows { count += 1 }
                return count
            }
            removed += batch
            if batch < 10_000 { return removed }
        }
    }

    /// The answer the payload that made this message was given (a message assembled from parts
    /// answers every retry of any of its parts with it).
    func answer(forMessage messageID: UUID, on connection: PostgresConnection) async throws -> Outcome? {
        let rows = try await connection.run("""
            SELECT response_body::text FROM inbound_payloads
            WHERE message_id = \(messageID) AND response_status = 201
            ORDER BY received_at LIMIT 1
            """, logger: logger)
        for try await body in rows.decode(String.self) { return try Self.decodeOutcome(body) }
        return nil
    }

    struct Record: Sendable {
        var id: UUID
        var channel: Channel
        var provider: String
        var providerMessageID: String?
        var idempotencyKey: String?
        var contentType: String?
        var receivedAt: Date
        var processedAt: Date?
        var size: Int64
        var sha256: [UInt8]
        var parseStatus: String
        var parseError: String?
        var outcome: Outcome?
        var webhookAnswer: ProviderWebhookAnswer?
    }

    /// `postedWith`: only a payload posted with this API key (a gateway reads what it posted, nothing else).
    func record(id: UUID, postedWith keyID: UUID? = nil, on connection: PostgresConnection) async throws -> Record? {
        let rows = try await connection.run("""
            SELECT id, channel, provider, provider_message_id, idempotency_key, content_type, received_at, processed_at,
                   length(body)::bigint, sha256, parse_status, parse_error, response_body::text
            FROM inbound_payloads WHERE id = \(id) AND (\(keyID)::uuid IS NULL OR api_key_id = \(keyID))
            """, logger: logger)
        for try await row in rows {
            let (id, channel, provider, providerMessageID, key, contentType, receivedAt, processedAt, size, sha256, status, error, body) =
                try row.decode((UUID, String, String, String?, String?, String?, Date, Date?, Int64, ByteBuffer, String, String?, String?).self)
            var record = Record(
                id: id, channel: try Ticket.enumeration(channel), provider: provider, providerMessageID: providerMessageID,
                idempotencyKey: key, contentType: contentType, receivedAt: receivedAt, processedAt: processedAt, size: size,
                sha256: Array(buffer: sha256), parseStatus: status, parseError: error)
            // A provider webhook's answer lists its events; every other answer is one InboundResult.
            if let body, let webhook = try? JSONDecoder().decode(ProviderWebhookAnswer.self, from: Data(body.utf8)) {
                record.webhookAnswer = webhook
            } else {
                record.outcome = try body.map(Self.decodeOutcome)
            }
            return record
        }
        return nil
    }

    /// The bytes as received and the channel they came by (only a mail's are `message/rfc822`).
    func rawBody(id: UUID, postedWith keyID: UUID? = nil, on connection: PostgresConnection) async throws -> (bytes: [UInt8], channel: Channel)? {
        let rows = try await connection.run(
            "SELECT body, channel FROM inbound_payloads WHERE id = \(id) AND (\(keyID)::uuid IS NULL OR api_key_id = \(keyID))", logger: logger)
        for try await (body, channel) in rows.decode((ByteBuffer, String).self) { return (Array(buffer: body), try Ticket.enumeration(channel)) }
        return nil
    }

    private static func decodeOutcome(_ json: String) throws -> Outcome {
        try JSONDecoder().decode(Outcome.self, from: Data(json.utf8))
    }
}
