import Foundation
import Logging
import PostgresNIO

/// Drafting and sending replies. Every write happens under the ticket's row lock and only for the
/// agent holding the ticket's live claim, so two agents can never both answer one customer.
struct ReplyDesk: Sendable {
    let work: TicketWork
    var logger: Logger { work.logger }
    var database: Database { work.database }
    var events: EventStore { work.events }

    struct Draft: Sendable {
        var body: String
        var subject: String?
        var channel: Channel?
        var recipients: [String]?
    }

    func create(ticketID: UUID, draft: Draft, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let ticket = try await lockTicketHoldingClaim(ticketID, agentID: agentID, on: connection)
            let channel = draft.channel ?? ticket.channel
            let recipients: [String]
            if let given = draft.recipients {
                recipients = given.map { $0.trimmingCharacters(in: .whitespaces) }
            } else {
                recipients = try await defaultRecipients(customerID: ticket.customerID, channel: channel, on: connection)
            }
            let rows = try await connection.query("""
                INSERT INTO replies (ticket_id, author_agent_id, channel, recipients, subject, body_text)
                VALUES (\(ticketID), \(agentID), \(channel.rawValue), \(recipients), \(draft.subject ?? Self.replySubject(ticket)), \(draft.body))
                RETURNING \(unescaped: Reply.columns)
                """, logger: logger)
            let reply = try await Self.single(rows)
            try await events.record(.replyDrafted, ticketID: ticketID, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": reply.id.uuidString.lowercased()], on: connection)
            return reply
        }
    }

    func reply(id: UUID, on connection: PostgresConnection, lock: Bool = false) async throws -> Reply {
        let rows = try await connection.query(
            "SELECT \(unescaped: Reply.columns) FROM replies WHERE id = \(id) \(unescaped: lock ? "FOR UPDATE" : "")", logger: logger)
        for try await row in rows { return try Reply(row: row) }
        throw Problem.notFound("There is no reply \(id.uuidString.lowercased()).")
    }

    func update(replyID: UUID, body: String?, subject: String?, recipients: [String]?, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            // Editing a submitted reply takes it back to draft: what a supervisor approves is what they saw.
            guard reply.state == .draft || reply.state == .submitted else { throw Self.notDraft(reply) }
            let rows = try await connection.query("""
                UPDATE replies
                SET state = 'draft', body_text = \(body ?? reply.body), subject = \(subject ?? reply.subject),
                    recipients = \(recipients?.map { $0.trimmingCharacters(in: .whitespaces) } ?? reply.recipients),
                    version = version + 1, updated_at = now()
                WHERE id = \(replyID)
                RETURNING \(unescaped: Reply.columns)
                """, logger: logger)
            let updated = try await Self.single(rows)
            try await events.record(.replyEdited, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.uuidString.lowercased()], on: connection)
            return updated
        }
    }

    /// Sends a draft: the claim, the traffic cop and the guards are all checked in the transaction that
    /// records the outbound message and its outbox row, so what was checked is what goes out.
    func send(replyID: UUID, lastSeenMessageID: UUID?, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            guard reply.state == .draft else { throw Self.notDraft(reply) }
            if let reason = try await approvalReason(agentID: agentID, ticketID: ticket.id, on: connection) {
                throw Problem(.approvalRequired, status: .conflict, title: "Approval required",
                              detail: "\(reason): submit this reply (POST /v1/replies/\(replyID.uuidString.lowercased())/submit) for a supervisor to approve.")
            }
            return try await deliver(reply, ticket: ticket, lastSeen: lastSeenMessageID, by: principal, on: connection)
        }
    }

    /// The author asks for approval; the checks run now so that no one is asked to approve a mistake.
    func submit(replyID: UUID, lastSeenMessageID: UUID?, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let (ticket, reply) = try await lockReplyHoldingClaim(replyID, agentID: agentID, on: connection)
            guard reply.state == .draft else { throw Self.notDraft(reply) }
            try await checkBeforeSending(reply, ticket: ticket, lastSeen: lastSeenMessageID, on: connection)
            let submitted = try await setState(.submitted, of: replyID, on: connection)
            try await events.record(.replySubmitted, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.uuidString.lowercased()], on: connection)
            return submitted
        }
    }

    /// A supervisor approves a submitted reply, which is sent at once, exactly as it stands. Its author
    /// must still hold the claim: if the ticket has moved on to someone else, the answer is theirs now.
    func approve(replyID: UUID, lastSeenMessageID: UUID?, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let current = try await reply(id: replyID, on: connection)
            guard current.authorAgentID != agentID else {
                throw Problem(.forbidden, status: .forbidden, title: "Forbidden", detail: "A reply is approved by someone other than its author.")
            }
            let ticket = try await lockTicketHoldingClaim(current.ticketID, agentID: current.authorAgentID, on: connection)
            let reply = try await reply(id: replyID, on: connection, lock: true)
            guard reply.state == .submitted else { throw Self.notSubmitted(reply) }
            try await events.record(.replyApproved, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.uuidString.lowercased()], on: connection)
            return try await deliver(reply, ticket: ticket, lastSeen: lastSeenMessageID, by: principal, on: connection)
        }
    }

    /// A supervisor sends a submitted reply back; the comment joins the timeline as an internal note.
    func returnToAuthor(replyID: UUID, comment: String, by principal: Principal, agentID: UUID) async throws -> Reply {
        try await database.withTransaction { connection in
            let current = try await reply(id: replyID, on: connection)
            let (ticket, _) = try await work.lockTicket(current.ticketID, on: connection)
            let reply = try await reply(id: replyID, on: connection, lock: true)
            guard reply.state == .submitted else { throw Self.notSubmitted(reply) }
            let metadata = #"{"reply_id":"\#(replyID.uuidString.lowercased())","kind":"approval_returned"}"#
            try await connection.query("""
                INSERT INTO messages (ticket_id, direction, channel, author_agent_id, body_text, metadata)
                VALUES (\(ticket.id), 'internal', \(ticket.channel.rawValue), \(agentID), \(comment), \(metadata)::jsonb)
                """, logger: logger)
            let returned = try await setState(.draft, of: replyID, on: connection)
            try await events.record(.replyReturned, ticketID: ticket.id, customerID: ticket.customerID, actor: principal,
                                    data: ["reply_id": replyID.uuidString.lowercased(), "comment": comment], on: connection)
            return returned
        }
    }

    /// Traffic cop, then every guard; throws the first problem found.
    private func checkBeforeSending(_ reply: Reply, ticket: Ticket, lastSeen: UUID?, on connection: PostgresConnection) async throws {
        try await trafficCop(ticketID: ticket.id, lastSeen: lastSeen, on: connection)
        var findings = SendGuard.check(body: reply.body, attachmentCount: 0, extraWarningWords: work.warningWords)
        findings += try await recipientFindings(reply.recipients, customerID: ticket.customerID, on: connection)
        findings += try await greetingFindings(reply.body, customerID: ticket.customerID, on: connection)
        if let first = findings.first { throw Self.guardProblem(first.kind, findings) }
    }

    /// Checks, then turns the reply into an outbound message and one outbox row, in the caller's
    /// transaction (which holds the ticket's row lock).
    private func deliver(_ reply: Reply, ticket: Ticket, lastSeen: UUID?, by principal: Principal, on connection: PostgresConnection) async throws -> Reply {
        try await checkBeforeSending(reply, ticket: ticket, lastSeen: lastSeen, on: connection)
        // Stored bare, as every Message-ID is (inbound ones lose their angle brackets when parsed), so
        // that a customer's In-Reply-To finds it.
        let emailMessageID = "reply-\(reply.id.uuidString.lowercased())@madoguchi"
        let messageRows = try await connection.query("""
            INSERT INTO messages (ticket_id, direction, channel, author_agent_id, to_addresses, subject, body_text, email_message_id)
            VALUES (\(ticket.id), 'outbound', \(reply.channel.rawValue), \(reply.authorAgentID), \(reply.recipients), \(reply.subject), \(reply.body), \(emailMessageID))
            RETURNING id
            """, logger: logger)
        var messageID: UUID?
        for try await id in messageRows.decode(UUID.self) { messageID = id }
        try await connection.query("""
            INSERT INTO outbox (reply_id, channel, recipients, email_message_id)
            VALUES (\(reply.id), \(reply.channel.rawValue), \(reply.recipients), \(emailMessageID))
            """, logger: logger)
        let rows = try await connection.query("""
            UPDATE replies SET state = 'queued', message_id = \(messageID), sent_at = now(), version = version + 1, updated_at = now()
            WHERE id = \(reply.id)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger)
        let sent = try await Self.single(rows)
        try await connection.query("""
            UPDATE tickets
            SET first_responded_at = coalesce(first_responded_at, now()),
                status = CASE WHEN status = 'new' THEN 'open' ELSE status END,
                version = version + 1, updated_at = now()
            WHERE id = \(ticket.id)
            """, logger: logger)
        try await events.record(.replySent, ticketID: ticket.id, customerID: ticket.customerID, messageID: messageID, actor: principal,
                                data: ["reply_id": reply.id.uuidString.lowercased(), "recipients": reply.recipients], on: connection)
        return sent
    }

    private func setState(_ state: Reply.State, of replyID: UUID, on connection: PostgresConnection) async throws -> Reply {
        let rows = try await connection.query("""
            UPDATE replies SET state = \(state.rawValue), version = version + 1, updated_at = now()
            WHERE id = \(replyID)
            RETURNING \(unescaped: Reply.columns)
            """, logger: logger)
        return try await Self.single(rows)
    }

    /// Why this agent's reply on this ticket needs a supervisor, if it does: the agent is flagged
    /// (a novice), or a priority rule that matched the ticket asks for approval.
    private func approvalReason(agentID: UUID, ticketID: UUID, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.query("""
            SELECT a.requires_approval, t.approval_rule FROM agents a, tickets t WHERE a.id = \(agentID) AND t.id = \(ticketID)
            """, logger: logger)
        for try await (flagged, rule) in rows.decode((Bool, String?).self) {
            if flagged { return "Your replies go through a supervisor" }
            if let rule { return "Rule \(rule) sends replies on this ticket through a supervisor" }
        }
        return nil
    }

    // MARK: - Checks

    /// The reply and its ticket, both locked (ticket first, as every writer does, so none deadlock),
    /// provided the caller holds the ticket's live claim.
    private func lockReplyHoldingClaim(_ replyID: UUID, agentID: UUID, on connection: PostgresConnection) async throws -> (Ticket, Reply) {
        let unlocked = try await reply(id: replyID, on: connection)
        let ticket = try await lockTicketHoldingClaim(unlocked.ticketID, agentID: agentID, on: connection)
        return (ticket, try await reply(id: replyID, on: connection, lock: true))
    }

    /// The ticket, locked, provided the caller holds its live claim.
    private func lockTicketHoldingClaim(_ ticketID: UUID, agentID: UUID, on connection: PostgresConnection) async throws -> Ticket {
        let (ticket, live) = try await work.lockTicket(ticketID, on: connection)
        guard let claim = ticket.claim, live else {
            throw Problem(.claimRequired, status: .conflict, title: "Claim required",
                          detail: "Claim the ticket first (POST /v1/tickets/\(ticketID.uuidString.lowercased())/claim); a reply needs your live claim.")
        }
        guard claim.agentID == agentID else { throw TicketWork.claimHeld(claim) }
        return ticket
    }

    /// Refuses the send when anything but internal notes arrived after the message the agent last saw.
    private func trafficCop(ticketID: UUID, lastSeen: UUID?, on connection: PostgresConnection) async throws {
        if let lastSeen {
            let known = try await connection.query("SELECT 1 FROM messages WHERE id = \(lastSeen) AND ticket_id = \(ticketID)", logger: logger)
            var found = false
            for try await _ in known { found = true }
            guard found else {
                throw Problem.validationFailed([.init(pointer: "/last_seen_message_id", message: "is not a message of this ticket")])
            }
        }
        let rows = try await connection.query("""
            SELECT id FROM messages
            WHERE ticket_id = \(ticketID) AND direction <> 'internal'
              AND (\(lastSeen)::uuid IS NULL OR (created_at, id) > (SELECT created_at, id FROM messages WHERE id = \(lastSeen)))
            ORDER BY created_at, id
            """, logger: logger)
        var newer: [UUID] = []
        for try await id in rows.decode(UUID.self) { newer.append(id) }
        guard newer.isEmpty else {
            var problem = Problem(.newActivity, status: .conflict, title: "New messages since you looked",
                                  detail: "\(newer.count) message(s) arrived on this ticket after the one you last saw; read them before sending.")
            problem.members["new_message_ids"] = .strings(newer.map { $0.uuidString.lowercased() })
            throw problem
        }
    }

    /// Every recipient must be an identity of the ticket's customer: never another customer's address.
    private func recipientFindings(_ recipients: [String], customerID: UUID, on connection: PostgresConnection) async throws -> [SendGuard.Finding] {
        let rows = try await connection.query("SELECT value FROM customer_identities WHERE customer_id = \(customerID)", logger: logger)
        var known = Set<String>()
        for try await value in rows.decode(String.self) { known.insert(Self.normalizedAddress(value)) }
        return recipients.filter { !known.contains(Self.normalizedAddress($0)) }.map {
            SendGuard.Finding(kind: .unknownRecipient, message: "\($0) is not an address of this ticket's customer", text: $0)
        }
    }

    /// A greeting that names another of our customers ("佐藤様" on Yamada's ticket) is refused.
    private func greetingFindings(_ body: String, customerID: UUID, on connection: PostgresConnection) async throws -> [SendGuard.Finding] {
        guard let (name, line) = SendGuard.greetedName(in: body) else { return [] }
        let rows = try await connection.query("""
            SELECT id, display_name FROM customers
            WHERE display_name IS NOT NULL AND merged_into IS NULL
              AND lower(regexp_replace(display_name, '[[:space:]　]', '', 'g')) = \(name)
            """, logger: logger)
        var others: [String] = []
        var ours = false
        for try await (id, displayName) in rows.decode((UUID, String).self) {
            if id == customerID { ours = true } else { others.append(displayName) }
        }
        guard !ours, let other = others.first else { return [] }
        return [SendGuard.Finding(kind: .wrongCustomerName, message: "the greeting names \(other), another customer", line: line, column: 1, text: other)]
    }

    private func defaultRecipients(customerID: UUID, channel: Channel, on connection: PostgresConnection) async throws -> [String] {
        let kinds: [String] = switch channel {
        case .email, .webform: ["email"]
        case .sms: ["phone"]
        case .chat: ["line", "chat"]
        }
        let rows = try await connection.query("""
            SELECT value FROM customer_identities
            WHERE customer_id = \(customerID) AND kind = ANY(\(kinds)) AND undeliverable_at IS NULL
            ORDER BY created_at LIMIT 1
            """, logger: logger)
        for try await value in rows.decode(String.self) { return [value] }
        throw Problem.validationFailed([.init(pointer: "/recipients", message: "the customer has no deliverable \(kinds.joined(separator: " or ")) identity; name the recipients")])
    }

    /// Emails compare with the domain lower-cased, as identities are stored.
    static func normalizedAddress(_ address: String) -> String {
        let trimmed = address.trimmingCharacters(in: .whitespaces)
        guard let at = trimmed.lastIndex(of: "@") else { return trimmed }
        return String(trimmed[..<at]) + trimmed[at...].lowercased()
    }

    static func replySubject(_ ticket: Ticket) -> String {
        let subject = ticket.subject.isEmpty ? "お問い合わせ" : ticket.subject
        return "Re: \(subject) [#\(ticket.number)]"
    }

    static func guardProblem(_ kind: SendGuard.Finding.Kind, _ findings: [SendGuard.Finding]) -> Problem {
        var problem = Problem(
            Problem.Kind(rawValue: kind.rawValue), status: .unprocessableContent, title: "The reply cannot be sent",
            detail: findings.map { finding in
                (finding.line.map { "line \($0), column \(finding.column ?? 1): " } ?? "") + finding.message
            }.joined(separator: "; "))
        problem.members["findings"] = .array(findings.map { finding in
            var object: [String: Problem.Member] = ["type": .string(finding.kind.rawValue), "message": .string(finding.message)]
            if let line = finding.line { object["line"] = .int(line) }
            if let column = finding.column { object["column"] = .int(column) }
            if let text = finding.text { object["text"] = .string(text) }
            return .object(object)
        })
        return problem
    }

    static func notDraft(_ reply: Reply) -> Problem {
        Problem(.replyNotDraft, status: .conflict, title: "Not a draft", detail: "The reply is \(reply.state.rawValue); only a draft can be edited or sent.")
    }

    static func notSubmitted(_ reply: Reply) -> Problem {
        Problem(.replyNotDraft, status: .conflict, title: "Not submitted", detail: "The reply is \(reply.state.rawValue); only a submitted reply can be approved or returned.")
    }

    static func single(_ rows: PostgresRowSequence) async throws -> Reply {
        for try await row in rows { return try Reply(row: row) }
        throw RowNotFound("a reply INSERT/UPDATE … RETURNING")
    }
}
