import Foundation
import Logging
import PostgresNIO

/// Drafting, approving and sending replies: the reply's state machine. Every write happens under the
/// ticket's row lock and only for the agent holding the ticket's live claim, so two agents can never
/// both answer one customer.
///
///     draft ──send──▶ queued (an outbound message and one outbox row)
///       │ ▲
///  submit │ │ return (with a note) / edit
///       ▼ │
///     submitted ──approve──▶ queued
struct ReplyDesk: Sendable {
    let database: Database
    let logger: Logger
    /// Words a team never wants to send (configured), refused like placeholders.
    let warningWords: [String]
    /// The right-hand side of replies' Message-IDs: the support address's domain when there is one.
    var messageIDDomain = "madoguchi"

    var replies: ReplyStore { ReplyStore(logger: logger) }
    var tickets: TicketStore { TicketStore(logger: logger) }
    var events: EventStore { EventStore(logger: logger) }
    var checks: SendChecks { SendChecks(logger: logger, warningWords: warningWords) }

    struct Draft: Sendable {
        var body: String
        var subject: String?
        var channel: Channel?
        var recipients: [String]?
    }

    /// `replay`: the request's `Idempotency-Key`; a retry of a create that committed gets its reply.
    func create(ticketID: UUID, draft: Draft, by principal: Principal, agentID: UUID, replay: RequestReplay? = nil) async throws -> Reply {
        try await database.withTransaction { connection in
            if let earlier = try await replay?.earlier(on: connection) { return try await replies.reply(id: earlier, on: connection) }
            let ticket = try await lockTicketHoldingClaim(ticketID, agentID: agentID, on: connection)
            let channel = draft.channel ?? ticket.channel
            let recipients: [String]
            if let given = draft.recipients {
                recipients = Self.recipients(given, channel: channel)
            } else {
                recipients = try await defaultRecipients(ticketID: ticketID, customerID: ticket.customerID, channel: channel, on: connection)
            }
            let subject = Self.subject(draft.subject ?? "", ticket: ticket, channel: channel)
            let reply = try await replies.insert(
                ticketID: ticketID, authorAgentID: agentID, channel: channel, recipients: recipients,
                subject: subject, body: draft.body, on: connection)
            try await events.record(.replyDrafted, ticketID: ticketID, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": reply.id.lowercased], on: connection)
            try await replay?.record(reply.id, on: connection)
            return reply
        }
    }

    func reply(id: UUID, on connection: PostgresConnection) async throws -> Reply {
        try await replies.reply(id: id, on: connection)
    }

    func update(replyID: UUID, body: String?, subject: String?, recipients: [String]?, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            // Editing a submitted reply takes it back to draft: what a supervisor approves is what they saw.
            guard reply.state == .draft || reply.state == .submitted else { throw Problem.replyNotDraft(reply) }
            let updated = try await replies.edit(
                reply, body: body, subject: subject.map { Self.subject($0, ticket: ticket, channel: reply.channel) },
                recipients: recipients.map { Self.recipients($0, channel: reply.channel) }, by: agentID,
                on: connection)
            try await events.record(.replyEdited, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased], on: connection)
            return updated
        }
    }

    /// Sends a draft: the claim, the traffic cop and the guards are all checked in the transaction that
    /// records the outbound message and its outbox row, so what was checked is what goes out.
    /// `replay`: the request's `Idempotency-Key`; a retry of a send that committed gets the sent
    /// reply as the first answer did, not a 409 it could not tell from a failure.
    func send(replyID: UUID, lastSeenMessageID: UUID?, confirmUndeliverable: Bool = false, confirmed: Set<SendGuard.Finding.Kind> = [],
              by principal: Principal, agentID: UUID, replay: RequestReplay? = nil) async throws -> Reply {
        try await database.withTransaction { connection in
            if let earlier = try await replay?.earlier(on: connection) { return try await replies.reply(id: earlier, on: connection) }
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            guard reply.state == .draft else { throw Problem.replyNotDraft(reply) }
            if let reason = try await approvalReason(agentID: agentID, reply: reply, ticketID: ticket.id, on: connection) {
                throw Problem(.approvalRequired, status: .conflict, title: "Approval required",
                              detail: "\(reason): submit this reply (POST /v1/replies/\(replyID.lowercased)/submit) for a supervisor to approve.")
            }
            let sent = try await deliver(reply, ticket: ticket, lastSeen: lastSeenMessageID, confirmUndeliverable: confirmUndeliverable,
                                         confirmed: confirmed, answeredBy: agentID, by: principal, on: connection)
            try await replay?.record(sent.id, on: connection)
            return sent
        }
    }

    /// The author asks for approval; the checks run now so that no one is asked to approve a mistake.
    func submit(replyID: UUID, lastSeenMessageID: UUID?, confirmUndeliverable: Bool = false, confirmed: Set<SendGuard.Finding.Kind> = [],
                by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            // A reply someone else submitted is the claim holder's to submit again as it stands: its
            // submitter left the ticket, and an approval would refuse to send it on their behalf.
            guard reply.state == .draft || (reply.state == .submitted && reply.submittedBy != agentID) else {
                throw Problem.replyNotSubmittable(reply)
            }
            try await checks.check(reply, ticket: ticket, lastSeen: lastSeenMessageID, reader: agentID, confirmUndeliverable: confirmUndeliverable,
                                   confirmed: confirmed, on: connection)
            let submitted = try await replies.submit(replyID, by: agentID, on: connection)
            try await events.record(.replySubmitted, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased], on: connection)
            return submitted
        }
    }

    /// A supervisor approves a submitted reply, which is sent at once, exactly as it stands. It goes on
    /// behalf of the agent who submitted it (its author, or a colleague who took the ticket over and
    /// submitted the author's draft), who must still hold the claim: if the ticket has moved on to
    /// someone else since, the answer is theirs now: they submit it again (as it stands, or edited)
    /// if they want it sent.
    /// `version` is the one the supervisor read: a reply edited and submitted again since is not sent.
    /// With `replay`, a retry of an approval that committed gets the reply it sent, not a 409
    /// saying the reply is no longer awaiting approval.
    func approve(replyID: UUID, version: Int64, lastSeenMessageID: UUID?, confirmUndeliverable: Bool = false,
                 confirmed: Set<SendGuard.Finding.Kind> = [], by principal: Principal, agentID: UUID,
                 replay: RequestReplay? = nil) async throws -> Reply {
        try await database.withTransaction { connection in
            if let earlier = try await replay?.earlier(on: connection) { return try await replies.reply(id: earlier, on: connection) }
            let current = try await replies.reply(id: replyID, on: connection)
            let (ticket, live) = try await tickets.lock(current.ticketID, on: connection)
            // Read under the ticket's lock, which every submission takes: it cannot change now.
            let reply = try await replies.replyAtDesk(id: replyID, on: connection)
            guard reply.state == .submitted else { throw Problem.replyNotSubmitted(reply) }
            guard ticket.status != .closed else { throw Problem.ticketClosed(ticket.id) }
            // A second pair of eyes: neither whoever wrote the words, nor edited them, nor submitted
            // them (a supervisor who took the ticket over and edited a flagged agent's draft) approves them.
            let submitter = reply.submittedBy ?? reply.authorAgentID
            guard reply.authorAgentID != agentID, submitter != agentID, !reply.editors.contains(agentID) else {
                throw Problem(.forbidden, status: .forbidden, title: "Forbidden",
                              detail: "A reply is approved by someone other than its author, its editors and whoever submitted it.")
            }
            guard reply.version == version else { throw Problem.replyChanged(reply, approved: version) }
            guard let claim = ticket.claim, live, claim.agentID == submitter else {
                throw Self.submitterLeft(submitter, ticket: ticket, claimLive: live)
            }
            try await events.record(.replyApproved, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased], on: connection)
            let sent = try await deliver(reply, ticket: ticket, lastSeen: lastSeenMessageID, confirmUndeliverable: confirmUndeliverable,
                                         confirmed: confirmed, answeredBy: submitter, by: principal, on: connection)
            try await replay?.record(sent.id, on: connection)
            return sent
        }
    }

    /// The submitter of a reply awaiting approval no longer holds its ticket: approving would answer
    /// the customer over the head of whoever holds it now.
    static func submitterLeft(_ submitter: UUID, ticket: Ticket, claimLive: Bool) -> Problem {
        let who = "Agent \(submitter.lowercased), who submitted this reply,"
        guard let claim = ticket.claim, claimLive else {
            return Problem(.claimRequired, status: .conflict, title: "Claim required",
                           detail: "\(who) no longer holds the ticket's claim. Whoever claims the ticket next can submit it again for approval.")
        }
        var problem = TicketWork.claimHeld(claim)
        problem.detail = "\(who) no longer holds the ticket: agent \(claim.agentID.lowercased) does, until \(TicketWork.timestamp(claim.expiresAt)). "
            + "They can submit it again for approval."
        return problem
    }

    /// A supervisor sends a submitted reply back; the comment joins the timeline as an internal note.
    /// `version`, when given, is the reply as the supervisor read it: a reply edited since stays as it is.
    func returnToAuthor(replyID: UUID, version: Int64?, comment: String, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let current = try await replies.reply(id: replyID, on: connection)
            let (ticket, _) = try await tickets.lock(current.ticketID, on: connection)
            let reply = try await replies.replyAtDesk(id: replyID, on: connection)
            guard reply.state == .submitted else { throw Problem.replyNotSubmitted(reply) }
            if let version, reply.version != version { throw Problem.replyChanged(reply, read: version, action: "returning") }
            _ = try await MessageStore(logger: logger).insertNote(
                ticketID: ticket.id, channel: ticket.channel, agentID: agentID, body: comment,
                metadata: ["reply_id": replyID.lowercased, "kind": "approval_returned"], on: connection)
            let returned = try await replies.setState(.draft, of: replyID, on: connection)
            try await events.record(.replyReturned, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased, "comment": comment], on: connection)
            return returned
        }
    }

    /// Attaches a file to a draft (a submitted reply becomes a draft again: what a supervisor approves
    /// is what they saw).
    func addAttachment(replyID: UUID, filename: String, mediaType: String, content: [UInt8], by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            guard reply.state == .draft || reply.state == .submitted else { throw Problem.replyNotDraft(reply) }
            // A text or a LINE message carries no file: attached, it showed on the timeline as sent and
            // satisfied the missing-attachment guard, while the customer got the words alone.
            guard reply.channel == .email || reply.channel == .webform else {
                throw Problem.validationFailed([.init(
                    pointer: "/filename",
                    message: "a reply by \(reply.channel.rawValue) carries no files (they go out only by mail); send a link in the text, or answer by email")])
            }
            // The same file under the same name again is a retry: the reply as it is.
            guard try await replies.addAttachment(to: replyID, filename: filename, mediaType: mediaType, content: content, on: connection) else {
                return reply
            }
            let updated = try await replies.filesChanged(replyID, by: agentID, on: connection)
            try await events.record(.replyEdited, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased, "attached": filename], on: connection)
            return updated
        }
    }

    /// Throws away a reply that never left. Its author may whatever became of the ticket (a second
    /// draft, or one left on a ticket answered since, stood in their list of drafts for good); anyone
    /// else needs the ticket's live claim, as for an edit, or to be a supervisor. Under the ticket's
    /// row lock, as a send is: a send and a discard of one draft never both happen.
    func discard(replyID: UUID, by principal: Principal, agentID: UUID, replay: RequestReplay?) async throws {
        try await database.withTransaction { connection in
            if try await replay?.earlier(on: connection) != nil { return }
            let unlocked = try await replies.reply(id: replyID, on: connection)
            let ticket: Ticket
            if unlocked.authorAgentID == agentID || principal.role == .supervisor {
                ticket = try await tickets.lock(unlocked.ticketID, on: connection).0
            } else {
                ticket = try await lockTicketHoldingClaim(unlocked.ticketID, agentID: agentID, on: connection)
            }
            let reply = try await replies.replyAtDesk(id: replyID, on: connection)
            guard reply.state == .draft || reply.state == .submitted else { throw Problem.replyNotDraft(reply) }
            try await replies.delete(replyID, on: connection)
            try await events.record(.replyDiscarded, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased], on: connection)
            try await replay?.record(replyID, on: connection)
        }
    }

    /// Takes a file off a draft (a submitted reply becomes a draft again, as when one is attached).
    func removeAttachment(_ attachmentID: UUID, replyID: UUID, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            guard reply.state == .draft || reply.state == .submitted else { throw Problem.replyNotDraft(reply) }
            guard let name = try await replies.removeAttachment(attachmentID, from: replyID, on: connection) else {
                throw Problem.notFound("Reply \(replyID.lowercased) has no file \(attachmentID.lowercased).")
            }
            let updated = try await replies.filesChanged(replyID, by: agentID, on: connection)
            try await events.record(.replyEdited, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.lowercased, "removed": name], on: connection)
            return updated
        }
    }

    /// Checks, then turns the reply into an outbound message and one outbox row, in the caller's
    /// transaction (which holds the ticket's row lock).
    /// `answeredBy` is the agent the answer is theirs: who sent it, or who submitted it for approval
    /// (not the approver). A colleague's draft taken over, edited and sent is the sender's answer:
    /// credited to the draft's first author, their report counted a reply they never sent.
    private func deliver(
        _ reply: Reply, ticket: Ticket, lastSeen: UUID?, confirmUndeliverable: Bool, confirmed: Set<SendGuard.Finding.Kind>, answeredBy: UUID,
        by principal: Principal,
        on connection: PostgresConnection
    ) async throws -> Reply {
        let overridden = try await checks.check(reply, ticket: ticket, lastSeen: lastSeen, reader: principal.agentID,
                                                confirmUndeliverable: confirmUndeliverable, confirmed: confirmed, on: connection)
        // Stored bare, as every Message-ID is (inbound ones lose their angle brackets when parsed), so
        // that a customer's In-Reply-To finds it. Fixed now: every delivery attempt carries it.
        let emailMessageID = "reply-\(reply.id.lowercased)@\(messageIDDomain)"
        let messageID = try await MessageStore(logger: logger).insert(
            NewMessage(ticketID: ticket.id, direction: .outbound, channel: reply.channel, authorAgentID: answeredBy,
                       to: reply.recipients, subject: reply.subject, bodyText: reply.body, emailMessageID: emailMessageID,
                       attachments: try await replies.attachmentContents(of: reply.id, on: connection)),
            on: connection)
        try await OutboxStore(logger: logger).enqueue(
            replyID: reply.id, channel: reply.channel, recipients: reply.recipients, emailMessageID: emailMessageID, on: connection)
        let sent = try await replies.markQueued(reply.id, messageID: messageID, confirmedUndeliverable: overridden.undeliverable, on: connection)
        var data: [String: Any] = ["reply_id": reply.id.lowercased, "recipients": reply.recipients, "automatic": false]
        if !overridden.findings.isEmpty { data["confirmed_findings"] = overridden.findings }
        try await events.record(.replySent, ticketID: ticket.id, customerID: ticket.customerID, messageID: messageID, actor: principal,
                                data: data, on: connection)
        try await tickets.recordResponse(ticket.id, by: answeredBy, reply: reply.id, actor: principal, on: connection)
        return sent
    }

    /// Why this reply must be approved before it goes, if it must: its sender, its author or one of
    /// its editors is flagged (a novice; another agent who takes the ticket over and sends a flagged
    /// agent's words sends words no supervisor saw), or a priority rule that matched the ticket asks
    /// for approval.
    private func approvalReason(agentID: UUID, reply: Reply, ticketID: UUID, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.run("""
            SELECT bool_or(a.id = \(agentID) AND a.requires_approval), bool_or(a.id = \(reply.authorAgentID) AND a.requires_approval),
                   bool_or(a.id = ANY(\(reply.editors)::uuid[]) AND a.requires_approval), min(t.approval_rule)
            FROM agents a, tickets t WHERE (a.id IN (\(agentID), \(reply.authorAgentID)) OR a.id = ANY(\(reply.editors)::uuid[])) AND t.id = \(ticketID)
            """, logger: logger)
        for try await (senderFlagged, authorFlagged, editorFlagged, rule) in rows.decode((Bool?, Bool?, Bool?, String?).self) {
            if senderFlagged == true { return "Your replies go through a supervisor" }
            if authorFlagged == true { return "This reply's author's replies go through a supervisor" }
            if editorFlagged == true { return "An agent whose replies go through a supervisor edited this reply" }
            if let rule { return "Rule \(rule) sends replies on this ticket through a supervisor" }
        }
        return nil
    }

    // MARK: - Locks

    /// The reply and its ticket, both locked (ticket first, as every writer does, so none deadlock),
    /// provided the caller holds the ticket's live claim.
    private func lockReplyHoldingClaim(_ replyID: UUID, agentID: UUID, on connection: PostgresConnection) async throws -> (Ticket, Reply) {
        let unlocked = try await replies.reply(id: replyID, on: connection)
        let ticket = try await lockTicketHoldingClaim(unlocked.ticketID, agentID: agentID, on: connection)
        return (ticket, try await replies.replyAtDesk(id: replyID, on: connection))
    }

    /// The ticket, locked, provided the caller holds its live claim and it is not closed.
    private func lockTicketHoldingClaim(_ ticketID: UUID, agentID: UUID, on connection: PostgresConnection) async throws -> Ticket {
        let (ticket, live) = try await tickets.lock(ticketID, on: connection)
        guard let claim = ticket.claim, live else { throw Problem.claimRequired(ticketID) }
        guard claim.agentID == agentID else { throw await TicketWork.claimHeld(claim, on: connection, logger: logger) }
        guard ticket.status != .closed else { throw Problem.ticketClosed(ticketID) }
        return ticket
    }

    /// Each recipient in its stored form (`recipient`), once: two spellings of one mailbox are one.
    static func recipients(_ typed: [String], channel: Channel) -> [String] {
        var seen = Set<String>()
        return typed.map { recipient($0, channel: channel) }.filter { seen.insert($0).inserted }
    }

    /// A recipient as an agent typed it, in the form identities are stored in: an SMS number written
    /// the Japanese way (090-1234-5678) is the customer's +819012345678, an address typed full-width
    /// (ｔａｒｏ@example.jp) the ASCII one the mail goes to. Anything that does not read
    /// as one is kept as typed, for the recipient guard to refuse by name.
    static func recipient(_ typed: String, channel: Channel) -> String {
        let trimmed = typed.trimmingCharacters(in: .whitespaces)
        // A web form's reply goes out by mail too.
        if recipientKinds(of: channel) == ["email"], trimmed.contains("@") || trimmed.contains("＠") { return IdentityValue.email(trimmed) }
        guard channel == .sms, case .valid(let e164) = PhoneNumber.normalize(trimmed) else { return trimmed }
        return e164
    }

    /// The identity kinds a reply on `channel` can go to.
    static func recipientKinds(of channel: Channel) -> [String] {
        switch channel {
        case .email, .webform: ["email"]
        case .sms: ["phone"]
        case .chat: ["line", "chat"]
        }
    }

    /// Where a reply goes when the agent names no one: the address the customer last wrote to this
    /// ticket from, when it is a deliverable identity of theirs of the reply's kind (a customer with
    /// a work and a home address is answered where they wrote from); otherwise their oldest
    /// deliverable identity of that kind. A message keeps its sender as written (`Taro@Example.JP`)
    /// and identities are stored in one spelling, so the two are compared in that spelling
    /// (`recipient`), which SQL cannot write.
    private func defaultRecipients(ticketID: UUID, customerID: UUID, channel: Channel, on connection: PostgresConnection) async throws -> [String] {
        let kinds = Self.recipientKinds(of: channel)
        let rows = try await connection.run("""
            SELECT i.value, (SELECT m.from_address FROM messages m
                             WHERE m.ticket_id IN (SELECT ticket_id FROM ticket_timeline(\(ticketID)))
                               AND m.direction = 'inbound' AND m.classification = 'customer'
                             ORDER BY m.created_at DESC, m.id DESC LIMIT 1)
            FROM customer_identities i
            WHERE i.customer_id = \(customerID) AND i.kind = ANY(\(kinds)) AND i.undeliverable_at IS NULL
            ORDER BY i.created_at, i.id
            """, logger: logger)
        // A text goes to a number that can take one: a customer who wrote from a mobile and once
        // left a landline on a form is texted on the mobile. With none, the landline is named, and
        // the send guard says why it cannot go (`not-a-mobile-number`).
        var oldest: String?
        var unreachable: String?
        for try await (value, lastSender) in rows.decode((String, String?).self) {
            if channel == .sms, PhoneNumber.smsRefusal(value) != nil {
                unreachable = unreachable ?? value
                continue
            }
            if let lastSender, Self.recipient(lastSender, channel: channel) == value { return [value] }
            oldest = oldest ?? value
        }
        if let chosen = oldest ?? unreachable { return [chosen] }
        throw Problem.validationFailed([.init(pointer: "/recipients", message: "the customer has no deliverable \(kinds.joined(separator: " or ")) identity; name the recipients")])
    }

    /// On one line (`Text.oneLine`), so that a reply to a subject with line breaks does not fail at delivery.
    static func replySubject(_ ticket: Ticket) -> String {
        replySubject(ticket.subject, number: ticket.number)
    }

    /// Within the 2,000 characters a reply's subject may hold: the customer's own subject may already
    /// take all of them, and "Re: " and the number come on top. Once: the customer's own "Re:" or
    /// "Fwd:" and an old ticket's token go first (`ThreadSubject.withoutPrefixes`).
    static func replySubject(_ subject: String, number: Int64) -> String {
        let subject = ThreadSubject.withoutPrefixes(Text.oneLine(subject))
        let (prefix, suffix) = ("Re: ", " [#\(number)]")
        let room = maxSubjectLength - Text.length(prefix) - Text.length(suffix)
        return prefix + (subject.isEmpty ? "お問い合わせ" : Text.prefix(subject, room)) + suffix
    }

    /// The subject a reply goes with: the agent's own (`keepingTicketToken`), or the default
    /// (`replySubject`) when they wrote none or a blank one: a mail whose subject was "[#4]" alone
    /// said nothing of what it answered.
    static func subject(_ written: String, ticket: Ticket, channel: Channel) -> String {
        written.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            ? replySubject(ticket) : keepingTicketToken(written, number: ticket.number, channel: channel)
    }

    /// A subject an agent wrote, with the ticket's `[#1234]` at its end when it lacks it (mail only).
    /// Carrier mailers often drop In-Reply-To and References, and the customer's answer then finds
    /// its ticket by that token alone: a subject taken from a template ("領収書発行のご案内") must
    /// not lose it.
    /// Another ticket's token (a subject copied from an earlier ticket) goes: the customer's answer
    /// would thread to the first token in the subject.
    static func keepingTicketToken(_ subject: String, number: Int64, channel: Channel) -> String {
        guard channel == .email || channel == .webform else { return subject }
        let token = "[#\(number)]"
        let ours = subject.replacing(/\ ?\[#(\d+)\]/) { match in match.output.1 == String(number) ? String(match.output.0) : "" }
        if ours.contains(token) { return ours }
        let trimmed = ours.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return token }
        let suffix = " " + token
        return Text.prefix(trimmed, maxSubjectLength - Text.length(suffix)) + suffix
    }

    /// `replies.subject`'s CHECK.
    static let maxSubjectLength = 2000

    /// A subject an agent gives: one header line.
    static func checkSubject(_ subject: String?) throws {
        guard let subject, subject.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return }
        throw Problem.validationFailed([.init(pointer: "/subject", message: "a subject is one line: it cannot contain line breaks")])
    }
}
