import Foundation
import Logging
import MadoguchiMail
import PostgresNIO

/// The acknowledgement a customer gets when their mail opens a ticket (受付確認メール): a team
/// template, rendered for the ticket and queued like any reply, from the service's own agent and
/// marked automatic (so it carries `Auto-Submitted: auto-replied`).
///
/// Loop protection, before anything is written: never to a sender that is itself automatic
/// (Auto-Submitted, Precedence bulk/list/junk, a mailing list), never to a no-reply or mailer
/// address, never to ourselves, never to a From its domain disowns (DMARC fail), and at most
/// `dailyCap` automatic mails per recipient a day — a misconfigured auto-responder answering us gets
/// one answer, not a loop (FreeScout's 4 → 16 → 64).
struct AutomaticReply: Sendable {
    let logger: Logger
    let settings: Settings

    struct Settings: Sendable {
        /// `MADOGUCHI_AUTO_REPLY_TEMPLATE`: the template's name (or id); nil turns the feature off.
        var template: String?
        /// `MADOGUCHI_AUTO_REPLY_DAILY_CAP`.
        var dailyCap: Int = 3
        /// Our own address (`MADOGUCHI_MAIL_FROM`): never answered, in any `+tag` form.
        var ownAddress: String?
        var messageIDDomain: String = "madoguchi"
        /// `MADOGUCHI_WARNING_WORDS`: refused in an automatic reply as in any other.
        var warningWords: [String] = []
    }

    static let agentID = UUID(uuidString: "00000000-0000-4000-8000-00000000a070")!

    /// `replies.body_text`'s CHECK.
    static let maxBodyLength = 200_000

    /// Why `mail` from `sender` gets no automatic answer, if it does not.
    static func withholdReason(_ mail: ParsedMail, sender: String, ownAddress: String?) -> String? {
        if let value = mail.autoSubmitted?.lowercased(), value != "no" { return "the mail is automatic (Auto-Submitted: \(value))" }
        if let precedence = mail.precedence?.lowercased(), ["bulk", "list", "junk", "auto_reply"].contains(precedence) {
            return "the mail is bulk (Precedence: \(precedence))"
        }
        if mail.listID != nil { return "the mail came through a mailing list" }
        if mail.classification != .customer { return "the mail is a \(mail.classification.rawValue)" }
        if isMachineAddress(sender) { return "\(sender) is a machine's address" }
        if let own = ownAddress, Self.baseAddress(sender) == Self.baseAddress(own) { return "\(sender) is our own address" }
        if failsDMARC(mail) { return "the sender's domain disowns the mail (DMARC fail): \(sender) may be forged" }
        // A web form's mail, answered at its Reply-To (`FormRelay`): only when the form's domain vouches
        // for it. Anyone can write the form's address in From and a stranger's in Reply-To, and our
        // DKIM-signed acknowledgement would go to them.
        if let from = mail.from?.address, baseAddress(from) != baseAddress(sender),
           !ForwardingAgent.isAuthenticated(mail, domain: FormRelay.domain(of: from)) {
            return "the mail came from \(from) for \(sender) (a web form) without the MTA's word (dmarc=pass) that \(FormRelay.domain(of: from)) sent it"
        }
        return nil
    }

    /// mailer-daemon@, no-reply@ and their kind: nobody reads what goes there.
    static func isMachineAddress(_ address: String) -> Bool {
        let local = address.split(separator: "@").first.map { $0.lowercased() } ?? ""
        let machines = ["mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "bounce", "bounces", "auto-reply"]
        return machines.contains { local == $0 || local.hasPrefix($0 + "+") || local.hasPrefix($0 + "-") }
    }

    /// An `Authentication-Results` field (RFC 8601) saying `dmarc=fail`: the From domain's owner says
    /// this mail is not theirs. Answered anyway, a forged From would get our mail, DKIM-signed, with
    /// the forger's subject and name in it (phishing and backscatter under the shop's name). Only a
    /// failure is acted on, so a field the sender wrote themselves can only withhold their own
    /// acknowledgement; the ticket is opened either way.
    static func failsDMARC(_ mail: ParsedMail) -> Bool {
        mail.root.headers.all("Authentication-Results").contains { field in
            field.text.lowercased().split(whereSeparator: { $0 == ";" || $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
                .contains { $0 == "dmarc=fail" }
        }
    }

    /// `support+t12@shop.example` and `support@shop.example` are one mailbox.
    static func baseAddress(_ address: String) -> String {
        let normalized = IdentityValue.comparable(address).lowercased()
        guard let at = normalized.lastIndex(of: "@") else { return normalized }
        let local = normalized[..<at]
        return String(local.split(separator: "+", maxSplits: 1).first ?? local) + normalized[at...]
    }

    /// Queues the acknowledgement for a ticket that `mail` just opened, or records why not. In the
    /// ingest transaction, so the answer is committed with the ticket or not at all.
    ///
    /// Under a savepoint: the customer's mail must never be lost to its acknowledgement. Whatever
    /// the template makes of this ticket (a subject or body past a limit, a check it breaks), the
    /// acknowledgement is withheld, saying why, and the mail is taken in; before, the error rolled
    /// back the whole ingest and the mail gateway bounced the customer's mail.
    func acknowledge(_ mail: ParsedMail, sender: String, ticket: ConversationIntake.Target, on connection: PostgresConnection) async throws {
        guard settings.template != nil else { return }
        _ = try await connection.run("SAVEPOINT acknowledgement", logger: logger)
        do {
            try await queueAcknowledgement(mail, sender: sender, ticket: ticket, on: connection)
            _ = try await connection.run("RELEASE SAVEPOINT acknowledgement", logger: logger)
        } catch {
            // A connection that is gone cannot roll back either: then the ingest fails as it would have.
            _ = try await connection.run("ROLLBACK TO SAVEPOINT acknowledgement", logger: logger)
            logger.error("automatic reply failed", metadata: ["ticket": "\(ticket.id)", "error": "\(String(reflecting: error))"])
            try await withhold("the acknowledgement could not be queued: \(Self.reason(error))", ticket: ticket, recipient: sender, on: connection)
        }
    }

    /// What went wrong, in the words of whoever refused it.
    private static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError, let message = error.serverInfo?[.message] { return Text.limit(message, 500) }
        if let problem = error as? Problem { return Text.limit(problem.detail, 500) }
        return Text.limit(String(describing: error), 500)
    }

    private func queueAcknowledgement(_ mail: ParsedMail, sender: String, ticket: ConversationIntake.Target, on connection: PostgresConnection) async throws {
        guard let name = settings.template else { return }
        if let reason = Self.withholdReason(mail, sender: sender, ownAddress: settings.ownAddress) {
            return try await withhold(reason, ticket: ticket, recipient: sender, on: connection)
        }
        let recent = try await sentToday(sender, on: connection)
        guard recent < settings.dailyCap else {
            return try await withhold("\(sender) already got \(recent) automatic replies in the last 24 hours", ticket: ticket, recipient: sender, on: connection)
        }
        guard let template = try await template(name, on: connection) else {
            logger.warning("automatic reply: no template named \(name) (MADOGUCHI_AUTO_REPLY_TEMPLATE)")
            return
        }
        let values = try await TemplateStore(logger: logger).values(ticketID: ticket.id, agentID: Self.agentID, order: [:], on: connection)
        let rendered: [String]
        do {
            rendered = try TemplateRenderer(values: values).render([template.subject ?? "", template.body])
        } catch {
            return try await withhold("the template leaves \((error.unknown + error.unfilled).joined(separator: ", ")) unfilled", ticket: ticket,
                                      recipient: sender, on: connection)
        }
        let subjectRows = try await connection.run("SELECT subject FROM tickets WHERE id = \(ticket.id)", logger: logger)
        var ticketSubject = ""
        for try await subject in subjectRows.decode(String.self) { ticketSubject = subject }
        // The customer's subject, repeated by the template ({{ticket.subject}}), is their words. The
        // template's own text is checked apart, every value standing in as a neutral word: a blank of
        // the template's (XX様) is ours even when the customer's subject happens to hold the same XX.
        let neutral = (try? TemplateRenderer(values: values.mapValues { _ in Optional("値") }).render([template.subject ?? "", template.body])) ?? []
        let findings = SendGuard.checkSubject(rendered[0], customerSubject: ticketSubject, extraWarningWords: settings.warningWords)
            + SendGuard.check(body: rendered[1], attachmentCount: 1, extraWarningWords: settings.warningWords, customerSubject: ticketSubject)
            + neutral.flatMap { SendGuard.placeholders(in: $0) }
        if let finding = findings.first {
            return try await withhold("the template fails a send guard: \(finding.message)", ticket: ticket, recipient: sender, on: connection)
        }
        // One header line within the column's limit: the template may repeat a subject that already
        // fills it ({{ticket.subject}}), or one with line breaks.
        let subject = template.subject == nil
            ? ReplyDesk.replySubject(ticketSubject, number: ticket.number)
            : Text.prefix(Text.oneLine(rendered[0]), ReplyDesk.maxSubjectLength)
        guard Text.length(rendered[1]) <= Self.maxBodyLength else {
            return try await withhold("the template makes a body longer than \(Self.maxBodyLength) characters", ticket: ticket,
                                      recipient: sender, on: connection)
        }
        let reply = try await ReplyStore(logger: logger).insertAutomatic(
            ticketID: ticket.id, authorAgentID: Self.agentID, recipients: [sender], subject: subject, body: rendered[1], on: connection)
        let emailMessageID = "reply-\(reply.id.lowercased)@\(settings.messageIDDomain)"
        let messageID = try await MessageStore(logger: logger).insert(
            NewMessage(ticketID: ticket.id, direction: .outbound, channel: .email, authorAgentID: Self.agentID, to: [sender], subject: subject,
                       bodyText: rendered[1], emailMessageID: emailMessageID, metadata: #"{"automatic":true}"#),
            on: connection)
        try await OutboxStore(logger: logger).enqueue(replyID: reply.id, channel: .email, recipients: [sender], emailMessageID: emailMessageID, on: connection)
        _ = try await ReplyStore(logger: logger).markQueued(reply.id, messageID: messageID, on: connection)
        try await EventStore(logger: logger).record(
            .replySent, ticketID: ticket.id, customerID: ticket.customerID, messageID: messageID, actor: nil,
            data: ["reply_id": reply.id.lowercased, "recipients": [sender], "automatic": true], on: connection)
    }

    private func sentToday(_ recipient: String, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("""
            SELECT count(*)::int FROM replies WHERE automatic AND created_at > now() - interval '24 hours' AND \(recipient) = ANY(recipients)
            """, logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    private func template(_ nameOrID: String, on connection: PostgresConnection) async throws -> Template? {
        let rows = try await connection.run("""
            SELECT \(unescaped: Template.columns) FROM templates
            WHERE (name = \(nameOrID) OR id::text = \(nameOrID.lowercased())) AND deleted_at IS NULL LIMIT 1
            """, logger: logger)
        for try await row in rows { return try Template(row: row) }
        return nil
    }

    private func withhold(_ reason: String, ticket: ConversationIntake.Target, recipient: String, on connection: PostgresConnection) async throws {
        logger.info("automatic reply withheld", metadata: ["ticket": "\(ticket.id)", "reason": "\(reason)"])
        try await EventStore(logger: logger).record(
            .replyAutomaticWithheld, ticketID: ticket.id, customerID: ticket.customerID, actor: nil,
            data: ["recipient": recipient, "reason": reason], on: connection)
    }
}
