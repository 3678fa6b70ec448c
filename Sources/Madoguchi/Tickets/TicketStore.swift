import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Filters for listing tickets; every one optional.
struct TicketFilter: Sendable {
    var statuses: [Ticket.Status] = []
    var assigneeID: UUID?
    var unassignedOnly = false
    var customerID: UUID?
    /// `true`: only tickets whose customer waits for us; `false`: only those nobody waits on.
    var awaitingReply: Bool?
    var slaStates: [Ticket.SLAState] = []
    /// A ticket number as the customer quotes it (`[#1234]`).
    var number: Int64?
    var queue: String?
    var priorities: [Ticket.Priority] = []
    var channels: [Channel] = []
    var category: String?
    /// Tickets carrying this tag among others.
    var tag: String?
}

/// The orders a ticket list can come in besides newest first: each by a time column, earliest
/// first, listing only tickets where that time is set.
enum TicketOrder: String, Sendable {
    /// The unanswered guard (返信漏れ): the customer waiting longest first, from the view
    /// `tickets_awaiting_reply` (an index scan of `tickets_waiting_since`).
    case longestWaiting = "longest_waiting"
    /// The running response clock (first or next response) that falls due soonest first.
    case responseDue = "response_due"
    /// The running resolution clock that falls due soonest first. A solved or closed ticket keeps its
    /// resolution due time (reports judge it against it), but its clock has stopped: listed, every
    /// old closed ticket (all past due) came before the open ones.
    case resolutionDue = "resolution_due"

    var column: String {
        switch self {
        case .longestWaiting: "awaiting_reply_since"
        case .responseDue: "response_due_at"
        case .resolutionDue: "resolution_due_at"
        }
    }

    var relation: String { self == .longestWaiting ? "tickets_awaiting_reply" : "tickets" }

    /// What else a ticket must be to be in this order (the partial index `tickets_resolution_running`
    /// serves the resolution order's).
    var running: String { self == .resolutionDue ? "status NOT IN ('solved', 'closed')" : "true" }
}

/// Where a page ordered by a time starts: after the ticket numbered `number` whose time was
/// `microseconds` after the Unix epoch. Whole microseconds, PostgreSQL's own resolution, so no
/// timestamp is rounded through a cursor.
struct TimePosition: Sendable {
    var microseconds: Int64
    var number: Int64
}

/// The one writer of `tickets`, and the SQL behind reading tickets and their timelines and the row
/// lock every writer takes first. Its writes are grouped by use in `TicketStore+*.swift`: claims,
/// the queue's pull, intake, changes, merges, routing.
struct TicketStore: Sendable {
    let logger: Logger

    /// How long a writer waits for another request's row lock before answering `ticket-busy`.
    static let lockTimeout = "2s"

    /// Locks the ticket's row (waiting at most `lockTimeout`) and says whether its claim is still live,
    /// judged by the database's clock, not ours.
    func lock(_ id: UUID, on connection: PostgresConnection) async throws -> (Ticket, claimLive: Bool) {
        let locked = try await waitingAtMostLockTimeout(for: "ticket \(id.lowercased)", on: connection) { () -> (Ticket, Bool)? in
            let rows = try await connection.run("""
                SELECT \(unescaped: Ticket.columns), coalesce(claim_expires_at > now(), false) AS claim_live
                FROM tickets WHERE id = \(id) FOR UPDATE
                """, logger: logger)
            for try await row in rows {
                let live: Bool = try row.makeRandomAccess().value("claim_live")
                return (try Ticket(row: row), live)
            }
            return nil
        }
        guard let locked else { throw Problem.notFound("There is no ticket \(id.lowercased).") }
        return locked
    }

    /// Locks every ticket a merge writes, in one order (the database's, by id), before any is read:
    /// the pair, and the tickets merged into the duplicate earlier, whose pointers move on. Two
    /// merges of the same tickets then wait for each other instead of deadlocking.
    func lockForMerge(duplicate: UUID, survivor: UUID, on connection: PostgresConnection) async throws {
        try await waitingAtMostLockTimeout(for: "one of the tickets", on: connection) {
            try await connection.perform("""
                SELECT id FROM tickets WHERE id IN (\(duplicate), \(survivor)) OR merged_into = \(duplicate) ORDER BY id FOR UPDATE
                """, logger: logger)
        }
    }

    /// Runs `lock` waiting at most `lockTimeout` for another request's row locks: past it, `ticket-busy`.
    private func waitingAtMostLockTimeout<Result>(
        for what: String, on connection: PostgresConnection, _ lock: () async throws -> Result
    ) async throws -> Result {
        try await connection.perform("SET LOCAL lock_timeout = '\(unescaped: Self.lockTimeout)'", logger: logger)
        do {
            return try await lock()
        } catch where error.sqlState == .lockNotAvailable {
            throw Problem(.ticketBusy, status: .conflict, title: "Ticket busy",
                          detail: "Another request held \(what) longer than \(Self.lockTimeout); try again.")
        }
    }

    /// A reply did not reach the customer: the ticket is tagged `delivery-failed` and, if it was
    /// waiting on the customer or solved, open again, so that someone answers another way; the
    /// customer is waiting for us again, since their last message. Followers
    /// of the feed see the tag in a `ticket.updated` and the status in a `ticket.reopened`.
    /// A closed ticket stays closed and takes no reply: the failure goes to its follow-up instead
    /// (`followUpForFailure`), where someone can answer.
    ///
    /// When another reply has answered the customer's latest message all the same (a later one: a
    /// bounce can come days after the mail; or an earlier one, when what failed was an extra reply),
    /// the ticket is tagged, so that someone sees the address failed, but neither reopened nor waiting
    /// again (it showed on the unanswered list, 返信漏れ, though the customer had their answer), and a
    /// closed one is left alone.
    /// `replyID` names the reply that failed or, for a provider's report, `messageID` its message.
    /// `cancelled`: a person gave the reply up (a held duplicate whose first copy went): when another
    /// reply answered the customer, nothing failed that anyone must act on, and the ticket is left as
    /// it is rather than tagged.
    /// The automatic acknowledgement answers nothing, so its failure restarts no wait either: the
    /// ticket is tagged (the address may be wrong) and otherwise left as it is, as when another reply
    /// answered. A closed one stays closed with no follow-up (spam from a forged sender, closed
    /// unanswered, had come back as a new ticket when its acknowledgement bounced).
    func flagDeliveryFailure(_ ticketID: UUID, ofReply replyID: UUID?, orMessage messageID: UUID? = nil, cancelled: Bool = false,
                             on connection: PostgresConnection) async throws {
        // The ticket where someone answers now (a merge's survivor), locked before asking whether a
        // later reply went: an agent's send committing in between would be missed, and the wait it
        // had just ended would start again. No lock timeout: a report is not turned away for a busy
        // ticket.
        let current = try await connection.run("""
            SELECT coalesce(merged_into, id) FROM tickets WHERE id = \(ticketID)
            """, logger: logger).collect().first.map { try $0.decode(UUID.self) } ?? ticketID
        try await connection.perform("SELECT 1 FROM tickets WHERE id = \(current) FOR NO KEY UPDATE", logger: logger)
        let (failed, automatic) = try await failedMessage(reply: replyID, orMessage: messageID, on: connection) ?? (nil, false)
        // The acknowledgement answered nothing: its failure is handled as if another reply had.
        let answered = automatic ? true : try await answeredSince(failed: failed, onTimelineOf: current, on: connection)
        if answered && cancelled { return }
        try await flagDeliveryFailure(ticketID, answeredSince: answered, failed: failed, on: connection)
    }

    /// The outbound message that did not reach the customer (the reply's, or the one a provider's
    /// report named), and whether it is the automatic acknowledgement's; nil when there is none.
    private func failedMessage(reply replyID: UUID?, orMessage messageID: UUID?, on connection: PostgresConnection) async throws
        -> (id: UUID?, automatic: Bool)? {
        let rows = try await connection.run("""
            SELECT m.id, EXISTS (SELECT 1 FROM replies r WHERE r.message_id = m.id AND r.automatic)
            FROM messages m WHERE m.id = coalesce((SELECT message_id FROM replies WHERE id = \(replyID)), \(messageID))
            """, logger: logger)
        for try await (id, automatic) in rows.decode((UUID, Bool).self) { return (id, automatic) }
        return nil
    }

    /// Replies the relay or provider took answered their tickets after all: the `delivery-failed` tag
    /// an earlier reply's failure set comes off (a `ticket.updated` names it), so the tag says what it
    /// means — the customer has not been reached — and a resent answer does not leave it for good. Not
    /// for an automatic acknowledgement, which answers nothing. Should this reply fail in turn, its
    /// failure tags the ticket again.
    func clearDeliveryFailure(answeredBy replyIDs: [UUID], on connection: PostgresConnection) async throws {
        guard !replyIDs.isEmpty else { return }
        let rows = try await connection.run("""
            UPDATE tickets t
            SET tags = array_remove(t.tags, 'delivery-failed'), version = t.version + 1, updated_at = now()
            FROM tickets old
            WHERE old.id = t.id AND 'delivery-failed' = ANY (t.tags)
              AND t.id IN (SELECT r.ticket_id FROM replies r WHERE r.id = ANY (\(replyIDs)) AND NOT r.automatic)
            RETURNING t.id, old.tags, t.tags, t.version, t.customer_id
            """, logger: logger)
        let events = EventStore(logger: logger)
        for try await (ticketID, before, after, version, customerID) in rows.decode((UUID, [String], [String], Int64, UUID).self) {
            try await events.record(.ticketUpdated, ticketID: ticketID, customerID: customerID, actor: nil,
                                    data: ["changes": ["tags": ["from": before, "to": after]], "version": version], on: connection)
        }
    }

    private func flagDeliveryFailure(_ ticketID: UUID, answeredSince answered: Bool, failed: UUID?, on connection: PostgresConnection) async throws {
        // A reply of a ticket merged since: the ticket it went into is where someone answers now
        // (read again under the lock: a merge may have committed while the lock was awaited).
        let merged = try await connection.run("SELECT merged_into FROM tickets WHERE id = \(ticketID)", logger: logger)
        for try await survivor in merged.decode(UUID?.self) {
            if let survivor { return try await flagDeliveryFailure(survivor, answeredSince: answered, failed: failed, on: connection) }
        }
        if !answered, let followUp = try await followUpForFailure(onClosed: ticketID, failed: failed, on: connection) {
            return try await flagDeliveryFailure(followUp, answeredSince: false, failed: failed, on: connection)
        }
        let rows = try await connection.run("""
            UPDATE tickets t
            SET tags = CASE WHEN 'delivery-failed' = ANY(t.tags) THEN t.tags ELSE array_append(t.tags, 'delivery-failed') END,
                status = CASE WHEN t.status IN ('pending', 'solved') AND NOT \(answered) THEN 'open' ELSE t.status END,
                solved_at = CASE WHEN t.status = 'solved' AND NOT \(answered) THEN NULL ELSE t.solved_at END,
                awaiting_reply_since = CASE WHEN \(answered) THEN t.awaiting_reply_since
                                            ELSE coalesce(t.awaiting_reply_since, t.last_customer_message_at) END,
                version = t.version + 1, updated_at = now()
            FROM tickets old
            WHERE t.id = \(ticketID) AND old.id = t.id AND NOT (\(answered) AND t.status = 'closed')
            RETURNING old.status, t.status, old.tags, t.tags, t.version, t.customer_id
            """, logger: logger)
        let events = EventStore(logger: logger)
        for try await (from, to, tagsBefore, tags, version, customerID) in rows.decode((String, String, [String], [String], Int64, UUID).self) {
            if tags != tagsBefore {
                try await events.record(.ticketUpdated, ticketID: ticketID, customerID: customerID, actor: nil,
                                        data: ["changes": ["tags": ["from": tagsBefore, "to": tags]], "version": version], on: connection)
            }
            if from != to {
                try await events.record(.ticketReopened, ticketID: ticketID, customerID: customerID, actor: nil,
                                        data: ["from": from, "to": to, "reason": "delivery_failed"], on: connection)
            }
        }
    }

    /// Whether the customer has an answer to their latest message all the same: another reply on the
    /// timeline of `ticketID` (where the failed reply's ticket now belongs), written after that
    /// message, that went or is on its way (not the automatic acknowledgement, not one held for a
    /// person, not a text its provider has since reported failed). Earlier or later than the failed
    /// one: an extra reply that failed after the answer reached them ends no wait.
    /// `failed` (`failedMessage`) is read first, so that the others are found through the timeline's index.
    private func answeredSince(failed: UUID?, onTimelineOf ticketID: UUID, on connection: PostgresConnection) async throws -> Bool {
        guard let failed else { return false }
        let rows = try await connection.run("""
            SELECT EXISTS (
                SELECT 1 FROM messages other
                JOIN replies r ON r.message_id = other.id
                LEFT JOIN outbox o ON o.reply_id = r.id
                WHERE other.ticket_id = ANY(ARRAY(SELECT ticket_id FROM ticket_timeline(\(ticketID))))
                  AND other.direction = 'outbound' AND other.id <> \(failed)
                  AND other.created_at > coalesce((SELECT last_customer_message_at FROM tickets WHERE id = \(ticketID)), '-infinity')
                  AND r.state IN ('queued', 'sent') AND NOT r.automatic AND o.state IS DISTINCT FROM 'held'
                  -- Not one to an address now known dead (this failure may have just marked it):
                  -- it is on its way to the same end, and nobody else would answer meanwhile.
                  AND EXISTS (SELECT 1 FROM unnest(r.recipients) AS sent(value)
                              WHERE NOT EXISTS (SELECT 1 FROM customer_identities i
                                                WHERE i.value = sent.value AND i.undeliverable_at IS NOT NULL))
                  AND coalesce(other.metadata->'delivery'->>'status', '') <> ALL(\(SmsDeliveryReport.failureStatuses)::text[]))
            """, logger: logger)
        for try await answered in rows.decode(Bool.self) { return answered }
        return false
    }

    /// For a failure on a closed ticket (row-locked here): its open follow-up for failures, or a new
    /// one, as a customer writing on a closed ticket starts a new ticket linked to it. It carries
    /// the closed ticket's customer, subject, queue, priority, category, assignee and SLA policy,
    /// and the customer waits on it from its opening. nil for a ticket that is not closed.
    /// A new one opens with a note of what failed (`failed`, the outbound message): its timeline was
    /// empty, and whoever picked it up could not tell what to answer, nor to whom.
    private func followUpForFailure(onClosed ticketID: UUID, failed: UUID?, on connection: PostgresConnection) async throws -> UUID? {
        let found = try await connection.run("""
            SELECT t.status = 'closed',
                   (SELECT f.id FROM tickets f
                    WHERE f.related_ticket_id = t.id AND f.status <> 'closed' AND 'delivery-failed' = ANY (f.tags)
                    ORDER BY f.number LIMIT 1)
            FROM tickets t WHERE t.id = \(ticketID)
            FOR UPDATE OF t
            """, logger: logger)
        var closed = false, existing: UUID?
        for try await (isClosed, followUp) in found.decode((Bool, UUID?).self) { (closed, existing) = (isClosed, followUp) }
        guard closed else { return nil }
        if let existing { return existing }
        // The customer's share lock, so that a merge of this customer under way (it has locked the
        // customers and is moving their tickets) is waited for: written beside it, the follow-up kept
        // the customer merged away, whose identities had moved, so no reply could be addressed and
        // the survivor's ticket list missed it. Waiting here while holding the closed ticket, which
        // the merge moves too, can deadlock with it; PostgreSQL rolls one back and it runs again,
        // after the other committed (a follow-up is rare, a merge beside it rarer).
        let customer = try await survivingCustomer(ofTicket: ticketID, on: connection)
        let opened = try await connection.run("""
            INSERT INTO tickets (customer_id, subject, channel, thread_subject, related_ticket_id, queue, priority, priority_reason,
                                 approval_rule, required_skill, category, assignee_id, sla_policy_id, tags,
                                 last_customer_message_at, awaiting_reply_since)
            SELECT \(customer), c.subject, c.channel, c.thread_subject, c.id, c.queue, c.priority, c.priority_reason,
                   c.approval_rule, c.required_skill, c.category,
                   -- Not a departed agent's (migration 0079): the queue offers it to someone else.
                   CASE WHEN EXISTS (SELECT FROM agents a WHERE a.id = c.assignee_id AND a.active) THEN c.assignee_id END,
                   c.sla_policy_id, array_remove(c.tags, 'delivery-failed'), c.last_customer_message_at, now()
            FROM tickets c WHERE c.id = \(ticketID)
            RETURNING id, number, customer_id, channel::text
            """, logger: logger)
        for try await (id, number, customerID, channel) in opened.decode((UUID, Int64, UUID, String).self) {
            try await EventStore(logger: logger).record(
                .ticketCreated, ticketID: id, customerID: customerID, actor: nil,
                data: ["channel": channel, "number": number, "related_ticket_id": ticketID.lowercased], on: connection)
            try await noteFailure(on: id, channel: channel, closed: ticketID, failed: failed, customerID: customerID, on: connection)
            return id
        }
        return nil
    }

    /// The note a follow-up for a failure opens with, by the desk's own agent (as automatic replies
    /// are): which ticket was closed, which reply did not reach whom, and why, as far as known.
    private func noteFailure(on followUp: UUID, channel: String, closed: UUID, failed: UUID?, customerID: UUID,
                             on connection: PostgresConnection) async throws {
        let rows = try await connection.run("""
            SELECT c.number, m.to_addresses, coalesce(m.metadata->'delivery'->>'error', o.last_error,
                   CASE WHEN r.state = 'bounced' THEN 'a bounce came back' END)
            FROM tickets c
            LEFT JOIN messages m ON m.id = \(failed)
            LEFT JOIN replies r ON r.message_id = m.id
            LEFT JOIN outbox o ON o.reply_id = r.id
            WHERE c.id = \(closed)
            """, logger: logger)
        for try await (number, recipients, reason) in rows.decode((Int64, [String]?, String?).self) {
            var text = "Ticket #\(number) was closed when our reply"
            if let recipients, !recipients.isEmpty { text += " to \(recipients.joined(separator: ", "))" }
            text += " did not reach the customer"
            if let reason, !reason.isEmpty { text += " (\(Text.limit(reason, 500)))" }
            text += ". Answer them another way: their other contacts are on their record. / 返信が届きませんでした。別の連絡先でご対応ください。"
            try await MessageStore(logger: logger).insertServiceNote(
                ticketID: followUp, customerID: customerID, channel: Channel(rawValue: channel) ?? .email, agentID: AutomaticReply.agentID,
                body: text, source: "delivery_failure", on: connection)
        }
    }

    /// The live customer of `ticketID`, share-locked as `identity_owner` locks an owner: the end of
    /// its merges (`customer_survivor`), whose merge, if one is under way, is waited for. One that
    /// committed while the lock was awaited leaves the row merged: the chain is followed again.
    private func survivingCustomer(ofTicket ticketID: UUID, on connection: PostgresConnection) async throws -> UUID {
        // Each turn is a merge that committed within this transaction: a handful is already absurd.
        for _ in 0..<5 {
            let rows = try await connection.run("""
                SELECT c.id, c.merged_into IS NULL FROM customers c
                WHERE c.id = customer_survivor((SELECT customer_id FROM tickets WHERE id = \(ticketID)))
                FOR SHARE OF c
                """, logger: logger)
            guard let (customer, live) = try await rows.collect().first.map({ try $0.decode((UUID, Bool).self) }) else {
                throw RowNotFound("the live customer of a ticket")
            }
            if live { return customer }
        }
        throw RowNotFound("the live customer of a ticket, after five merges")
    }

    /// We answered the customer: the first response is stamped once, nobody is waiting any more, and
    /// a new ticket is open (a `ticket.updated` by whoever answered). A response that ends a wait is
    /// a fact for the reports (`ticket_responses`): how long the customer waited, in wall-clock and
    /// in business time on the ticket's SLA calendar (the standard calendar without a policy), and
    /// the due time the response was measured against. The response is `responder`'s, the reply's
    /// author, even when `actor` is the supervisor whose approval sent it.
    func recordResponse(_ ticketID: UUID, by responder: UUID?, reply replyID: UUID, actor: Principal?, on connection: PostgresConnection) async throws {
        let rows = try await connection.run("""
            WITH answered AS (
                UPDATE tickets t
                SET first_responded_at = coalesce(t.first_responded_at, now()),
                    last_responded_at = now(), awaiting_reply_since = NULL,
                    status = CASE WHEN t.status = 'new' THEN 'open' ELSE t.status END,
                    version = t.version + 1, updated_at = now()
                FROM tickets old
                WHERE t.id = \(ticketID) AND old.id = t.id
                RETURNING old.status AS old_status, t.status, t.version, t.customer_id, t.sla_policy_id,
                          old.awaiting_reply_since AS waited_since, old.first_responded_at IS NULL AS is_first,
                          old.response_due_at AS due_at, old.sla_paused_at AS paused_at
            ), fact AS (
                -- Answered while the ticket is pending, the clock is measured as it stands at this
                -- instant: pushed back by the pause so far, as it would be were the pause to end now.
                INSERT INTO ticket_responses (ticket_id, agent_id, reply_id, is_first, waited_since, responded_at, due_at, wall_seconds, business_seconds)
                SELECT \(ticketID), \(responder), \(replyID), a.is_first, a.waited_since, now(),
                       CASE WHEN a.paused_at IS NULL THEN a.due_at
                            ELSE business_time_add(c.calendar, a.due_at, business_seconds(c.calendar, a.paused_at, now())) END,
                       extract(epoch FROM now() - a.waited_since),
                       -- Business time as the clock counts it: without the stretches spent pending.
                       business_seconds(c.calendar, a.waited_since, now())
                       - ticket_stretch_seconds(c.calendar, \(ticketID), ARRAY['pending'], a.waited_since, now())
                FROM answered a
                CROSS JOIN LATERAL (SELECT ticket_calendar(a.sla_policy_id) AS calendar) AS c
                WHERE a.waited_since IS NOT NULL
            )
            SELECT old_status, status, version, customer_id FROM answered
            """, logger: logger)
        for try await (from, to, version, customerID) in rows.decode((String, String, Int64, UUID).self) where from != to {
            try await EventStore(logger: logger).record(
                .ticketUpdated, ticketID: ticketID, customerID: customerID, actor: actor,
                data: ["changes": ["status": ["from": from, "to": to]], "version": version], on: connection)
        }
    }

    /// A reply the customer never received was no response: its fact leaves the reports, and the
    /// customer waits again from when they began to (not from their last message, as a failure
    /// alone restarts the wait); a first response withdrawn makes the clock a first-response clock
    /// again. Called before `flagDeliveryFailure`, in the failure's transaction, which holds the
    /// ticket. Only while the reply is the ticket's latest response and the ticket is neither closed
    /// nor merged: a failure learnt after a later answer, or on a ticket that has ended (its
    /// follow-up waits instead), leaves the facts as they are. `replyID` or, for a provider's
    /// report, the reply whose outbound message is `messageID`.
    func withdrawResponse(ofReply replyID: UUID?, orMessage messageID: UUID? = nil, on connection: PostgresConnection) async throws {
        let rows = try await connection.run("""
            WITH reply AS (
                SELECT id FROM replies WHERE id = \(replyID) OR (\(messageID)::uuid IS NOT NULL AND message_id = \(messageID))
            ), gone AS (
                DELETE FROM ticket_responses r
                USING reply, tickets t
                WHERE r.reply_id = reply.id AND t.id = r.ticket_id AND t.status <> 'closed' AND t.merged_into IS NULL
                  -- No reply sent since, fact or not (one sent while nobody waited writes none).
                  AND (t.last_responded_at IS NULL OR t.last_responded_at <= r.responded_at)
                  AND NOT EXISTS (SELECT 1 FROM ticket_responses later WHERE later.ticket_id = r.ticket_id AND later.responded_at > r.responded_at)
                RETURNING r.ticket_id, r.reply_id, r.is_first, r.waited_since
            )
            UPDATE tickets t
            SET last_responded_at = (SELECT max(x.responded_at) FROM ticket_responses x WHERE x.ticket_id = t.id AND x.reply_id IS DISTINCT FROM g.reply_id),
                awaiting_reply_since = least(coalesce(t.awaiting_reply_since, g.waited_since), g.waited_since),
                version = t.version + 1, updated_at = now()
            FROM gone g
            WHERE t.id = g.ticket_id
            RETURNING t.id, g.is_first
            """, logger: logger)
        var withdrawn: [(ticket: UUID, wasFirst: Bool)] = []
        for try await row in rows.decode((UUID, Bool).self) { withdrawn.append(row) }
        for (ticketID, wasFirst) in withdrawn {
            if wasFirst {
                // Unanswered again: no first response, and the next-response clock the wait started is no clock.
                try await connection.perform("""
                    UPDATE tickets SET first_responded_at = NULL, next_response_due_at = NULL, next_response_warn_at = NULL WHERE id = \(ticketID)
                    """, logger: logger)
            }
            // The wait may now begin earlier than the clock running (the customer wrote again since
            // the reply): the running clocks are set again from their starts, pauses left out, as a
            // policy change sets them (`tickets_sla_clocks`, `madoguchi.sla_reset`).
            try await connection.perform("""
                SELECT set_config('madoguchi.sla_reset', 'on', true)
                """, logger: logger)
            try await connection.perform("UPDATE tickets SET sla_policy_id = sla_policy_id WHERE id = \(ticketID)", logger: logger)
            try await connection.perform("SELECT set_config('madoguchi.sla_reset', 'off', true)", logger: logger)
        }
    }

    func ticket(id: UUID, on connection: PostgresConnection) async throws -> Ticket? {
        let rows = try await connection.run("SELECT \(unescaped: Ticket.columns) FROM tickets WHERE id = \(id)", logger: logger)
        for try await row in rows { return try Ticket(row: row) }
        return nil
    }

    /// Newest first (by ticket number), `limit` rows after the ticket numbered `before`.
    func tickets(matching filter: TicketFilter, before: Int64?, limit: Int, on connection: PostgresConnection) async throws -> [Ticket] {
        try await page(matching: filter, order: nil, before: before, after: nil, limit: limit, on: connection).map(\.ticket)
    }

    /// Tickets in `order` (earliest time first, then by number), each with its position for the next
    /// page's cursor. The order's column comes from a fixed list, never from the request.
    func tickets(
        matching filter: TicketFilter, order: TicketOrder, after: TimePosition?, limit: Int, on connection: PostgresConnection
    ) async throws -> [(ticket: Ticket, position: TimePosition)] {
        try await page(matching: filter, order: order, before: nil, after: after, limit: limit, on: connection)
            .map { ($0.ticket, TimePosition(microseconds: $0.microseconds ?? 0, number: $0.ticket.number)) }
    }

    /// One statement for every list: each filter is a bind parameter that is either NULL (no filter)
    /// or applied, so the plan cache stays warm; the order (`nil`: newest first by number) picks the
    /// relation, the column and the cursor's condition from fixed text.
    private func page(
        matching filter: TicketFilter, order: TicketOrder?, before: Int64?, after: TimePosition?, limit: Int, on connection: PostgresConnection
    ) async throws -> [(ticket: Ticket, microseconds: Int64?)] {
        let statuses: [String]? = filter.statuses.isEmpty ? nil : filter.statuses.map(\.rawValue)
        let states: [String]? = filter.slaStates.isEmpty ? nil : filter.slaStates.map(\.rawValue)
        let priorities: [String]? = filter.priorities.isEmpty ? nil : filter.priorities.map(\.rawValue)
        let channels: [String]? = filter.channels.isEmpty ? nil : filter.channels.map(\.rawValue)
        // Newest first has no time: its cursor's time condition compares a constant and is never met
        // (its parameters are NULL), but must still be well typed.
        let column = order?.column ?? "to_timestamp(0)"
        let rows = try await connection.run("""
            SELECT \(unescaped: Ticket.columns),
                   \(unescaped: order == nil ? "NULL::bigint" : "(extract(epoch FROM \(column)) * 1000000)::bigint") AS position_microseconds
            FROM \(unescaped: order?.relation ?? "tickets")
            WHERE \(unescaped: order.map { "\($0.column) IS NOT NULL AND \($0.running)" } ?? "true")
              AND (\(statuses)::text[] IS NULL OR status = ANY(\(statuses)::text[]))
              AND (\(filter.assigneeID)::uuid IS NULL OR assignee_id = \(filter.assigneeID))
              AND (NOT \(filter.unassignedOnly) OR assignee_id IS NULL)
              AND (\(filter.customerID)::uuid IS NULL OR customer_id = (SELECT customer_survivor(\(filter.customerID))))
              AND (\(filter.awaitingReply)::boolean IS NULL OR (awaiting_reply_since IS NOT NULL) = \(filter.awaitingReply))
              AND (\(states)::text[] IS NULL OR \(unescaped: Ticket.slaState()) = ANY(\(states)::text[]))
              AND (\(filter.number)::bigint IS NULL OR number = \(filter.number))
              AND (\(filter.queue)::text IS NULL OR queue = \(filter.queue))
              AND (\(priorities)::text[] IS NULL OR priority = ANY(\(priorities)::text[]))
              AND (\(channels)::text[] IS NULL OR channel::text = ANY(\(channels)::text[]))
              AND (\(filter.category)::text IS NULL OR category = \(filter.category))
              AND (\(filter.tag)::text IS NULL OR tags @> ARRAY[\(filter.tag)::text])
              AND (\(before)::bigint IS NULL OR number < \(before))
              AND (\(after?.microseconds)::bigint IS NULL
                   OR (\(unescaped: column), number)
                      > (to_timestamp(0) + make_interval(secs => \(after?.microseconds)::bigint / 1000000.0), \(after?.number)::bigint))
            ORDER BY \(unescaped: order == nil ? "number DESC" : "\(column), number")
            LIMIT \(limit)
            """, logger: logger)
        var page: [(Ticket, Int64?)] = []
        for try await row in rows {
            page.append((try Ticket(row: row), try row.makeRandomAccess().value("position_microseconds")))
        }
        return page
    }

    func hasMessage(_ id: UUID, onTicket ticketID: UUID, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("""
            SELECT EXISTS (SELECT 1 FROM messages WHERE id = \(id)
                           AND ticket_id IN (SELECT ticket_id FROM ticket_timeline(\(ticketID))))
            """, logger: logger)
        for try await found in rows.decode(Bool.self) { return found }
        return false
    }

    /// The ticket's timeline in order of arrival, `limit` messages after the message `after`: its own
    /// messages and those of every ticket merged into it (a merge flattens chains: `merged_into`
    /// names the last survivor). A merged duplicate's messages stay on it, for its reports, and are
    /// read here: the mail that opened the duplicate, often the customer's newest, was otherwise only
    /// a line in the merge note.
    /// The position is read back from the row itself, so no timestamp is ever rounded through a cursor.
    func messages(ticketID: UUID, after: UUID?, limit: Int, on connection: PostgresConnection) async throws -> [Message] {
        let rows = try await connection.run("""
            WITH timeline AS (SELECT ARRAY(SELECT ticket_id FROM ticket_timeline(\(ticketID))) AS tickets)
            SELECT \(unescaped: Message.columns) FROM messages AS message
            WHERE ticket_id = ANY((SELECT tickets FROM timeline)::uuid[])
              AND (\(after)::uuid IS NULL
                   OR (created_at, id) > (SELECT created_at, id FROM messages WHERE id = \(after) AND ticket_id = ANY((SELECT tickets FROM timeline)::uuid[])))
            ORDER BY created_at, id
            LIMIT \(limit)
            """, logger: logger)
        var messages: [Message] = []
        for try await row in rows { messages.append(try Message(row: row)) }
        guard !messages.isEmpty else { return messages }

        let attachmentRows = try await connection.run("""
            SELECT message_id, id, filename, media_type, size, sha256, content_id, inline, contained::text
            FROM attachments WHERE message_id = ANY(\(messages.map(\.id)))
            ORDER BY created_at, position, id
            """, logger: logger)
        var attachments: [UUID: [Message.Attachment]] = [:]
        for try await (messageID, id, filename, mediaType, size, sha256, contentID, inline, contained)
            in attachmentRows.decode((UUID, UUID, String, String, Int64, ByteBuffer, String?, Bool, String).self)
        {
            attachments[messageID, default: []].append(.init(
                id: id, filename: filename, mediaType: mediaType, size: size, sha256: Array(buffer: sha256), contentID: contentID, inline: inline,
                contained: (try? JSONDecoder().decode([ContainedFileRecord].self, from: Data(contained.utf8))) ?? []))
        }
        for index in messages.indices { messages[index].attachments = attachments[messages[index].id] ?? [] }
        return messages
    }
}
