import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The outbox as the delivery workers see it. Every state change is conditional on the caller's
/// claim still being the row's current one — its worker *and* its attempt number (`claimed_by`,
/// `attempts`) — so an attempt whose lease expired can never overwrite, or send beside, the attempt
/// that took over, even when both run in the same worker.
extension OutboxStore {
    /// Claims up to `limit` due rows for `worker`: queued ones whose time has come, and ones whose
    /// worker's lease expired before it reached the handover (it cannot have sent them). Rows other
    /// workers are claiming are skipped, not waited on. Each comes with what its reply is written
    /// from (`ReplySource`), read in the same statement: the claim is on the way of every delivery,
    /// and a second round trip to read the replies made the batch wait as long as the claim did.
    func claim(worker: String, channels: [Channel], lease: Duration, limit: Int, maxAttempts: Int, on connection: PostgresConnection) async throws -> [OutboxItem] {
        let rows = try await connection.rows("""
            WITH queued AS (
                -- Each arm reads its own partial index (outbox_due, outbox_leases), so a claim costs the
                -- same with a million sent rows behind it as with none. The arms' fixed limits (the
                -- most deliveries a worker runs at once) keep the plan PostgreSQL caches for this
                -- prepared statement the right one, whatever the backlog: with the caller's limit as a
                -- parameter there, the generic plan guessed a tenth of the queue and scanned whole
                -- tables, so every claim was planned anew (0.65 ms, more than it took to run).
                SELECT id FROM outbox
                WHERE state = 'queued' AND next_attempt_at <= now() AND channel::text = ANY(\(channels.map(\.rawValue))::text[])
                ORDER BY next_attempt_at
                LIMIT 64
                FOR UPDATE SKIP LOCKED
            ), abandoned AS (
                -- One whose attempts are spent is held instead (`holdAbandonedHandovers`).
                SELECT id FROM outbox
                WHERE state = 'sending' AND lease_expires_at < now() AND handover_at IS NULL
                  AND attempts - attempts_before_resend < \(maxAttempts)
                  AND channel::text = ANY(\(channels.map(\.rawValue))::text[])
                LIMIT 64
                FOR UPDATE SKIP LOCKED
            ), due AS (
                -- The arms are disjoint (by state). Rows are read, and locked, one at a time until the
                -- caller's limit: never more than it claims.
                SELECT id FROM abandoned UNION ALL SELECT id FROM queued LIMIT \(min(limit, 64))
            ), claimed AS (
                UPDATE outbox o
                SET state = 'sending', claimed_by = \(worker), lease_expires_at = now() + make_interval(secs => \(lease.seconds)),
                    attempts = o.attempts + 1, first_attempt_at = coalesce(o.first_attempt_at, now()), updated_at = now()
                -- By the primary key: a join with `due` was planned as a scan of the whole outbox.
                WHERE o.id = ANY(ARRAY(SELECT id FROM due))
                RETURNING o.id, o.reply_id, o.channel, o.recipients, o.email_message_id, o.attempts, o.message, o.recipient_results, o.retry_key,
                          o.first_attempt_at, o.attempts_before_resend
            )
            SELECT c.id, c.reply_id, c.channel::text, c.recipients, c.email_message_id, c.attempts, c.message,
                   c.recipient_results::text, c.retry_key,
                   r.body_text, r.subject, r.automatic, t.number, cu.display_name, parent.email_message_id, parent.email_references,
                   EXISTS (SELECT 1 FROM reply_attachments a WHERE a.reply_id = r.id), c.first_attempt_at, c.attempts_before_resend,
                   conversation.id
            FROM claimed c
            LEFT JOIN replies r ON r.id = c.reply_id
            LEFT JOIN tickets t ON t.id = r.ticket_id
            LEFT JOIN customers cu ON cu.id = t.customer_id
            -- A mail composed now answers the customer's latest mail on the ticket's timeline, which
            -- holds the mail of tickets merged into it (the one that opened a duplicate, often).
            -- Its References go on from the parent's, or, when the parent had none, from the one id
            -- its In-Reply-To named (RFC 5322 3.6.4; phone mailers often write only In-Reply-To).
            -- The latest is looked up ticket by ticket through a per-ticket index and the few
            -- answers compared: with `ticket_id = ANY(timeline)` the cached plan walked every
            -- customer mail of the database newest first, keeping one ticket's (0.5 ms a row with
            -- 2,000 tickets of one customer; more as the database grows).
            LEFT JOIN LATERAL (
                SELECT latest.email_message_id,
                       CASE WHEN cardinality(latest.email_references) = 0 AND latest.in_reply_to IS NOT NULL THEN ARRAY[latest.in_reply_to]
                            ELSE latest.email_references END AS email_references
                FROM ticket_timeline(t.id) AS timeline
                CROSS JOIN LATERAL (
                    SELECT m.created_at, m.id, m.email_message_id, m.email_references, m.in_reply_to FROM messages m
                    WHERE m.ticket_id = timeline.ticket_id
                      AND m.direction = 'inbound' AND m.channel = 'email' AND m.classification = 'customer'
                      AND m.email_message_id IS NOT NULL
                    ORDER BY m.created_at DESC, m.id DESC LIMIT 1
                ) latest
                WHERE c.message IS NULL AND c.channel IN ('email', 'webform')
                ORDER BY latest.created_at DESC, latest.id DESC LIMIT 1
            ) parent ON true
            -- A chat reply goes back into the conversation the customer wrote in last (the gateway's own id),
            -- on the ticket's timeline as a mail's parent is: a merged duplicate's chat is often the latest.
            LEFT JOIN LATERAL (
                SELECT latest.id
                FROM ticket_timeline(t.id) AS timeline
                CROSS JOIN LATERAL (
                    SELECT m.created_at, m.id AS message_id, m.metadata->>'conversation_id' AS id FROM messages m
                    WHERE m.ticket_id = timeline.ticket_id
                      AND m.direction = 'inbound' AND m.channel = 'chat' AND m.metadata ? 'conversation_id'
                    ORDER BY m.created_at DESC, m.id DESC LIMIT 1
                ) latest
                WHERE c.channel = 'chat'
                ORDER BY latest.created_at DESC, latest.message_id DESC LIMIT 1
            ) conversation ON true
            """, preparedAs: ClaimStatement.self, logger: logger)
        return try rows.map { row in
            let cells = row.makeRandomAccess()
            func cell<T: PostgresDecodable>(_ index: Int, _ type: T.Type = T.self) throws -> T { try cells[index].decode(T.self) }
            let source = try cell(9, String?.self).map { body in
                ReplySource(
                    body: body, subject: try cell(10), automatic: try cell(11, Bool?.self) ?? false, ticketNumber: try cell(12, Int64?.self) ?? 0,
                    customerName: try cell(13), parentID: try cell(14), parentReferences: try cell(15), hasAttachments: try cell(16),
                    conversationID: try cell(19))
            }
            return OutboxItem(
                id: try cell(0), replyID: try cell(1), channel: try Ticket.enumeration(try cell(2, String.self)), recipients: try cell(3),
                emailMessageID: try cell(4), attempts: try cell(5), message: try cell(6, ByteBuffer?.self).map { Array(buffer: $0) },
                results: (try? JSONDecoder().decode([String: RecipientResult].self, from: Data(try cell(7, String.self).utf8))) ?? [:],
                retryKey: try cell(8), source: source, firstAttemptAt: try cell(17), attemptsBeforeResend: Int(try cell(18, Int32.self)))
        }
    }

    /// Every worker's claim, every few milliseconds under load.
    private enum ClaimStatement: PreparedSite { static let name = "madoguchi_outbox_claim" }

    /// Claims returned untouched, as if never made: the worker's process began to stop while the
    /// claim was on its way (a claim that waited for a connection can commit after the notice). The
    /// attempt it counted is taken back, so the next start makes it again as the same attempt.
    func giveBack(_ claims: [Claim], worker: String, on connection: PostgresConnection) async throws {
        _ = try await connection.run("""
            UPDATE outbox o
            SET state = 'queued', claimed_by = NULL, lease_expires_at = NULL, attempts = o.attempts - 1,
                first_attempt_at = CASE WHEN o.attempts = 1 THEN NULL ELSE o.first_attempt_at END, updated_at = now()
            FROM unnest(\(claims.map(\.id))::uuid[], \(claims.map(\.attempt))::int8[]) AS c(id, attempt)
            WHERE o.id = c.id AND o.claimed_by = \(worker) AND o.attempts = c.attempt AND o.state = 'sending' AND o.handover_at IS NULL
            """, logger: logger)
    }

    /// Rows whose worker stopped after the handover began: the relay or provider may have the
    /// message, so they are held for a person instead of being sent again. So are rows that lapsed
    /// with every attempt `maxAttempts` allows spent: a chat push (no handover mark: its key makes a
    /// retry harmless to a gateway that keeps it) whose answer could never be written down was
    /// otherwise posted again at every lease, for ever, and a gateway that ignores keys showed the
    /// customer the reply each time. Returns the rows, their replies, the attempts made and why.
    func holdAbandonedHandovers(maxAttempts: Int, on connection: PostgresConnection) async throws
        -> [(outboxID: UUID, replyID: UUID, attempts: Int, reason: String)] {
        let rows = try await connection.run("""
            UPDATE outbox
            SET state = 'held', claimed_by = NULL, lease_expires_at = NULL, updated_at = now(),
                held_reason = CASE WHEN handover_at IS NOT NULL
                    THEN 'the worker stopped while handing the message over (at ' || handover_at::text || '); it may have been delivered'
                    -- Mail and texts mark their handover: without the mark, nothing was handed over.
                    WHEN channel IN ('email', 'webform', 'sms')
                    THEN 'no attempt reached the handover before its worker stopped (' || (attempts - attempts_before_resend)::text
                         || ' attempts): it was not sent'
                    ELSE 'no attempt''s result could be recorded (' || (attempts - attempts_before_resend)::text
                         || ' attempts); it may have been delivered' END
            WHERE state = 'sending' AND lease_expires_at < now()
              AND (handover_at IS NOT NULL OR attempts - attempts_before_resend >= \(maxAttempts))
            RETURNING id, reply_id, attempts, held_reason
            """, logger: logger)
        var held: [(UUID, UUID, Int, String)] = []
        for try await row in rows.decode((UUID, UUID, Int, String).self) { held.append(row) }
        return held
    }

    /// A row and the attempt that claimed it: a worker can hold a stale attempt of a row beside the
    /// current one, and only the current one may act.
    struct Claim: Hashable, Sendable {
        var id: UUID
        var attempt: Int
    }

    /// One delivery's point of no return: its claim, and the mail when this attempt composed it.
    struct HandoverMark: Sendable {
        var claim: Claim
        /// How long the row stays this worker's from now: the wait for the final answer and more.
        var lease: Duration
        var message: [UInt8]?
    }

    /// The points of no return of several deliveries, in one statement — with each composed mail, so
    /// that every later attempt sends the same bytes. Returns the rows still this worker's; for any
    /// other (its lease expired and another worker took it) nothing may be handed over.
    func markHandovers(_ marks: [HandoverMark], worker: String, on connection: PostgresConnection) async throws -> Set<Claim> {
        let composed = marks.filter { $0.message != nil }
        let rows = try await connection.rows("""
            UPDATE outbox o
            SET handover_at = now(), lease_expires_at = now() + make_interval(secs => m.lease_seconds), updated_at = now(),
                message = coalesce(o.message, (
                    SELECT c.message
                    FROM unnest(\(composed.map(\.claim.id))::uuid[], \(composed.map(\.claim.attempt))::int8[],
                                \(composed.compactMap { $0.message.map { ByteBuffer(bytes: $0) } })::bytea[]) AS c(id, attempt, message)
                    WHERE c.id = o.id AND c.attempt = o.attempts))
            FROM unnest(\(marks.map(\.claim.id))::uuid[], \(marks.map(\.claim.attempt))::int8[], \(marks.map(\.lease.seconds))::float8[])
                AS m(id, attempt, lease_seconds)
            WHERE o.id = m.id AND o.claimed_by = \(worker) AND o.attempts = m.attempt AND o.state = 'sending'
            RETURNING o.id, o.attempts
            """, preparedAs: HandoverStatement.self, logger: logger)
        return Set(try rows.map { row in
            let (id, attempt) = try row.decode((UUID, Int).self)
            return Claim(id: id, attempt: attempt)
        })
    }

    private enum HandoverStatement: PreparedSite { static let name = "madoguchi_outbox_handover" }

    struct Settlement: Sendable {
        var state: String
        var results: [String: RecipientResult]
        var error: String?
        var response: String?
        var provider: String?
        var providerMessageID: String?
        var nextAttemptIn: Duration?
        var heldReason: String?
    }

    /// Records where the delivery stands after an attempt; nil when the row is no longer this worker's.
    func settle(_ id: UUID, worker: String, attempt: Int, _ settlement: Settlement, on connection: PostgresConnection) async throws -> UUID? {
        let results = String(decoding: try JSONEncoder.sorted.encode(settlement.results), as: UTF8.self)
        let rows = try await connection.run("""
            UPDATE outbox
            SET state = \(settlement.state), recipient_results = \(results)::jsonb, last_error = \(settlement.error.map(Text.clean)),
                relay_response = coalesce(\(settlement.response.map(Text.clean)), relay_response), provider = coalesce(\(settlement.provider), provider),
                provider_message_id = coalesce(\(settlement.providerMessageID.map(Text.clean)), provider_message_id),
                sent_at = CASE WHEN \(settlement.state) = 'sent' THEN now() ELSE sent_at END,
                next_attempt_at = now() + make_interval(secs => \(settlement.nextAttemptIn?.seconds ?? 0)),
                held_reason = \(settlement.heldReason.map(Text.clean)), handover_at = NULL,
                claimed_by = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = \(id) AND claimed_by = \(worker) AND attempts = \(attempt) AND state = 'sending'
            RETURNING reply_id
            """, logger: logger)
        for try await replyID in rows.decode(UUID.self) { return replyID }
        return nil
    }
}

extension OutboxStore {
    /// A delivery every recipient took, as the relay answered it.
    struct Delivered: Sendable {
        var claim: Claim
        var results: [String: RecipientResult]
        var response: String?
    }

    /// Several deliveries settled as sent in one statement (the common outcome, by the batch); the
    /// rows still this worker's, with their replies.
    func settleSent(_ rows: [Delivered], worker: String, on connection: PostgresConnection) async throws -> [(claim: Claim, replyID: UUID)] {
        let results = try rows.map { String(decoding: try JSONEncoder.sorted.encode($0.results), as: UTF8.self) }
        let settled = try await connection.rows("""
            UPDATE outbox o
            SET state = 'sent', recipient_results = d.results::jsonb, last_error = NULL,
                relay_response = coalesce(nullif(d.response, ''), o.relay_response), sent_at = now(), next_attempt_at = now(),
                held_reason = NULL, handover_at = NULL, claimed_by = NULL, lease_expires_at = NULL, updated_at = now()
            FROM unnest(\(rows.map(\.claim.id))::uuid[], \(rows.map(\.claim.attempt))::int8[], \(results)::text[],
                        \(rows.map { Text.clean($0.response ?? "") })::text[]) AS d(id, attempt, results, response)
            WHERE o.id = d.id AND o.claimed_by = \(worker) AND o.attempts = d.attempt AND o.state = 'sending'
            RETURNING o.id, o.attempts, o.reply_id
            """, preparedAs: SettleSentStatement.self, logger: logger)
        return try settled.map { row in
            let (id, attempt, replyID) = try row.decode((UUID, Int, UUID).self)
            return (Claim(id: id, attempt: attempt), replyID)
        }
    }

    private enum SettleSentStatement: PreparedSite { static let name = "madoguchi_outbox_settle_sent" }
}

extension OutboxStore {
    /// The reply's outbox row, locked, and its state.
    func lock(replyID: UUID, on connection: PostgresConnection) async throws -> (id: UUID, state: String)? {
        let rows = try await connection.run("SELECT id, state FROM outbox WHERE reply_id = \(replyID) FOR UPDATE", logger: logger)
        for try await row in rows.decode((UUID, String).self) { return row }
        return nil
    }

    /// A person's decision on a held row: queued again now (same Message-ID), sent, or cancelled. A
    /// row queued again counts its attempts and their time afresh (`attempts_before_resend`,
    /// `first_attempt_at`): the person chose to send.
    /// Every recipient of the row's reply with no final result yet (none recorded, or pending)
    /// settled as `result`: a held delivery a supervisor marked sent showed its recipients pending.
    func settlePending(_ id: UUID, as result: RecipientResult, on connection: PostgresConnection) async throws {
        let settled = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
        try await connection.perform("""
            UPDATE outbox o
            SET recipient_results = o.recipient_results || coalesce((
                SELECT jsonb_object_agg(x, \(settled)::jsonb) FROM replies r, unnest(r.recipients) AS x
                WHERE r.id = o.reply_id AND coalesce(o.recipient_results -> x ->> 'status', 'pending') = 'pending'), '{}'::jsonb)
            WHERE o.id = \(id)
            """, logger: logger)
    }

    func resolveHeld(_ id: UUID, to state: String, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE outbox
            SET state = \(state), held_reason = NULL, handover_at = NULL, next_attempt_at = now(), first_attempt_at = NULL,
                attempts_before_resend = CASE WHEN \(state) = 'queued' THEN attempts ELSE attempts_before_resend END,
                sent_at = CASE WHEN \(state) = 'sent' THEN now() ELSE sent_at END, updated_at = now()
            WHERE id = \(id) AND state = 'held'
            """, logger: logger)
    }
}
