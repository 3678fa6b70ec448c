import Crypto
import Foundation
import NIOCore
import PostgresNIO

/// A file attached to a reply.
struct ReplyAttachment: Sendable {
    var id: UUID
    var filename: String
    var mediaType: String
    var size: Int64
    var sha256: [UInt8]
}

/// Where a sent reply's delivery stands, read from its outbox row.
struct ReplyDelivery: Sendable {
    var state: String
    var attempts: Int
    var nextAttemptAt: Date?
    var lastError: String?
    var heldReason: String?
    var relayResponse: String?
    var provider: String?
    var providerMessageID: String?
    var sentAt: Date?
    var recipients: [(recipient: String, result: RecipientResult?)]
    /// The customer's other deliverable identities, when this delivery failed or bounced.
    var alternatives: [(kind: String, value: String)] = []
    /// What receiving systems reported after the relay took it, short of a bounce (delay notices).
    var notices: [DeliveryNotice] = []
}

struct DeliveryNotice: Codable, Sendable {
    var recipient: String
    var action: String
    var status: String?
    var diagnostic: String?
    var reportedAt: String

    enum CodingKeys: String, CodingKey {
        case recipient, action, status, diagnostic
        case reportedAt = "reported_at"
    }
}

extension ReplyStore {
    /// Files are limited one by one and together: a relay refuses large mail, and carriers smaller still.
    static let attachmentLimit = 10 * 1_000_000
    /// The request that carries one: its base64 (4/3 of the file, 13.4 MB at most) and the JSON around it.
    static let attachmentRequestLimit = 14 * 1_000_000
    static let attachmentsTotalLimit = 20 * 1_000_000
    static let attachmentsCountLimit = 10

    /// Adds a file to a reply. False when the reply already carries this very file under this name:
    /// a client retrying after a lost answer (the request takes no Idempotency-Key) attached it
    /// twice, and the customer got it twice.
    @discardableResult
    func addAttachment(to replyID: UUID, filename: String, mediaType: String, content: [UInt8], on connection: PostgresConnection) async throws -> Bool {
        let digest = ByteBuffer(bytes: SHA256.hash(data: content))
        let same = try await connection.run("""
            SELECT 1 FROM reply_attachments WHERE reply_id = \(replyID) AND filename = \(filename) AND sha256 = \(digest)
            """, logger: logger)
        if try await !same.collect().isEmpty { return false }
        let rows = try await connection.run("""
            SELECT count(*)::int, coalesce(sum(size), 0)::bigint FROM reply_attachments WHERE reply_id = \(replyID)
            """, logger: logger)
        for try await (count, total) in rows.decode((Int, Int64).self) {
            guard count < Self.attachmentsCountLimit else {
                throw Problem.validationFailed([.init(pointer: nil, message: "a reply carries at most \(Self.attachmentsCountLimit) files")])
            }
            guard Int(total) + content.count <= Self.attachmentsTotalLimit else {
                throw Problem.validationFailed([.init(pointer: "/content_base64", message: "the reply's files would come to more than \(Self.attachmentsTotalLimit) bytes")])
            }
        }
        try await connection.perform("""
            INSERT INTO reply_attachments (reply_id, filename, media_type, size, sha256, content)
            VALUES (\(replyID), \(filename), \(mediaType), \(Int64(content.count)), \(digest), \(ByteBuffer(bytes: content)))
            """, logger: logger)
        return true
    }

    /// A sent reply whose message a provider later reports failed (an SMS delivery report) is
    /// `failed`; one already failed or bounced stays. Each with its delivery's attempts and recipients.
    func markFailed(sentAs messageID: UUID, on connection: PostgresConnection) async throws -> [(replyID: UUID, attempts: Int, recipients: [String])] {
        let rows = try await connection.run("""
            UPDATE replies r SET state = 'failed', version = r.version + 1, updated_at = now()
            FROM outbox o
            WHERE r.message_id = \(messageID) AND r.state = 'sent' AND o.reply_id = r.id
            RETURNING r.id, o.attempts, r.recipients
            """, logger: logger)
        var failed: [(UUID, Int, [String])] = []
        for try await row in rows.decode((UUID, Int, [String]).self) { failed.append(row) }
        return failed
    }

    /// A merge: the drafts and submitted replies of `ticketID` move to `survivorID`, with the
    /// conversation. Their number. Their words are as they were: the version stays, or a supervisor's
    /// approval of a reply read before the merge was refused as `reply-changed`; and so does
    /// `updated_at`, a submitted reply's place in the approval queue (it went to the back).
    func moveUnsent(from ticketID: UUID, to survivorID: UUID, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("""
            UPDATE replies SET ticket_id = \(survivorID)
            WHERE ticket_id = \(ticketID) AND state IN ('draft', 'submitted')
            RETURNING id
            """, logger: logger)
        var count = 0
        for try await _ in rows.decode(UUID.self) { count += 1 }
        return count
    }

    /// Deletes a reply that never left, with its files (the caller holds its row lock and checked
    /// its state).
    func delete(_ replyID: UUID, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            WITH files AS (DELETE FROM reply_attachments WHERE reply_id = \(replyID))
            DELETE FROM replies WHERE id = \(replyID) AND state IN ('draft', 'submitted')
            """, logger: logger)
    }

    /// Takes file `id` off reply `replyID`; its name, or nil when the reply has no such file.
    func removeAttachment(_ id: UUID, from replyID: UUID, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.run("""
            DELETE FROM reply_attachments WHERE id = \(id) AND reply_id = \(replyID) RETURNING filename
            """, logger: logger)
        for try await name in rows.decode(String.self) { return name }
        return nil
    }

    func attachments(of replyID: UUID, on connection: PostgresConnection) async throws -> [ReplyAttachment] {
        try await attachments(ofReplies: [replyID], on: connection)[replyID] ?? []
    }

    /// The files of several replies in one statement (a list's page), by reply.
    func attachments(ofReplies replyIDs: [UUID], on connection: PostgresConnection) async throws -> [UUID: [ReplyAttachment]] {
        let rows = try await connection.run("""
            SELECT reply_id, id, filename, media_type, size, sha256 FROM reply_attachments WHERE reply_id = ANY(\(replyIDs))
            ORDER BY created_at, id
            """, logger: logger)
        var files: [UUID: [ReplyAttachment]] = [:]
        for try await (replyID, id, name, type, size, sha) in rows.decode((UUID, UUID, String, String, Int64, ByteBuffer).self) {
            files[replyID, default: []].append(.init(id: id, filename: name, mediaType: type, size: size, sha256: Array(buffer: sha)))
        }
        return files
    }

    /// The files with their bytes, as the outbound message keeps them.
    func attachmentContents(of replyID: UUID, on connection: PostgresConnection) async throws -> [NewAttachment] {
        let rows = try await connection.run("""
            SELECT filename, media_type, content FROM reply_attachments WHERE reply_id = \(replyID) ORDER BY created_at, id
            """, logger: logger)
        var files: [NewAttachment] = []
        for try await (name, type, content) in rows.decode((String, String, ByteBuffer).self) {
            files.append(.init(filename: name, mediaType: type, content: Array(buffer: content)))
        }
        return files
    }

    func delivery(of reply: Reply, on connection: PostgresConnection) async throws -> ReplyDelivery? {
        try await deliveries(of: [reply], on: connection)[reply.id]
    }

    /// The deliveries of several replies (a list's page) in one statement, by reply; a reply not
    /// sent yet has none.
    func deliveries(of replies: [Reply], on connection: PostgresConnection) async throws -> [UUID: ReplyDelivery] {
        let byID = Dictionary(replies.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let rows = try await connection.run("""
            SELECT reply_id, state, attempts, CASE WHEN state = 'queued' THEN next_attempt_at END, last_error, held_reason, relay_response,
                   provider, provider_message_id, sent_at, recipient_results::text, notices::text
            FROM outbox WHERE reply_id = ANY(\(Array(byID.keys)))
            """, logger: logger)
        var deliveries: [UUID: ReplyDelivery] = [:]
        for try await (replyID, state, attempts, next, error, held, response, provider, providerID, sentAt, results, notices)
            in rows.decode((UUID, String, Int, Date?, String?, String?, String?, String?, String?, Date?, String, String).self)
        {
            guard let reply = byID[replyID] else { continue }
            let decoded = (try? JSONDecoder().decode([String: RecipientResult].self, from: Data(results.utf8))) ?? [:]
            var delivery = ReplyDelivery(
                // A bounce, or a provider's failure report after the send, comes after the outbox row is done.
                state: reply.state == .bounced ? "bounced" : reply.state == .failed && state == "sent" ? "failed" : state, attempts: attempts, nextAttemptAt: next, lastError: error, heldReason: held,
                relayResponse: response, provider: provider, providerMessageID: providerID, sentAt: sentAt,
                recipients: reply.recipients.map { ($0, decoded[$0]) })
            delivery.notices = (try? JSONDecoder().decode([DeliveryNotice].self, from: Data(notices.utf8))) ?? []
            deliveries[replyID] = delivery
        }
        // Read once the rows above are: a connection runs one statement at a time.
        for (replyID, delivery) in deliveries where ["failed", "bounced"].contains(delivery.state) {
            guard let reply = byID[replyID] else { continue }
            deliveries[replyID]?.alternatives = try await deliverableIdentities(ofTicket: reply.ticketID, excluding: reply.recipients, on: connection)
        }
        return deliveries
    }

    /// The ticket customer's identities a reply could still reach, to answer another way.
    func deliverableIdentities(ofTicket ticketID: UUID, excluding: [String], on connection: PostgresConnection) async throws -> [(kind: String, value: String)] {
        let rows = try await connection.run("""
            SELECT i.kind, i.value FROM customer_identities i JOIN tickets t ON t.customer_id = i.customer_id
            WHERE t.id = \(ticketID) AND i.undeliverable_at IS NULL AND i.kind IN ('email', 'phone', 'line') AND NOT (i.value = ANY(\(excluding)))
            ORDER BY i.created_at
            """, logger: logger)
        var identities: [(String, String)] = []
        for try await row in rows.decode((String, String).self) { identities.append(row) }
        return identities
    }

    /// Recipients of a reply that are identities known to be undeliverable, with why.
    func undeliverableRecipients(_ recipients: [String], customerID: UUID, on connection: PostgresConnection) async throws -> [(String, String)] {
        let rows = try await connection.run("""
            SELECT value, coalesce(undeliverable_reason, '') FROM customer_identities
            WHERE customer_id = \(customerID) AND undeliverable_at IS NOT NULL
            """, logger: logger)
        var marked: [String: String] = [:]
        for try await (value, reason) in rows.decode((String, String).self) { marked[IdentityValue.comparable(value)] = reason }
        return recipients.compactMap { recipient in marked[IdentityValue.comparable(recipient)].map { (recipient, $0) } }
    }
}
