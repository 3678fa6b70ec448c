import Foundation
import Logging
import MadoguchiMail
import NIOPosix
import PostgresNIO

/// An agent who forwarded a customer's mail to the support address (a customer wrote to the
/// owner's own address; the owner sends it on). The desk files it under the customer who wrote it,
/// not under the agent: otherwise the agent became a customer, and the reply went to them.
///
/// Believed only on proof that the agent sent it: their From is an active agent's address, and the
/// receiving MTA's `Authentication-Results` (the topmost field, the one it prepended) says the
/// From's domain vouches for the mail (`dmarc=pass`, or a `dkim=pass` signed by that domain).
/// Anyone can write a forward's header block and anyone can put an agent's address in From: a
/// stranger's "forward" would file their words as a customer's, on that customer's ticket, under an
/// agent's note. Without such a field the mail is the sender's own, as any other.
struct ForwardingAgent: Sendable {
    let agentID: UUID
    /// The agent's address, as the mail's From gave it.
    let address: String
    /// The original sender, as their identity is stored (`EmailIngest.usableSender`).
    let original: MailAddress
    let forward: ForwardedMail
    /// The original's subject, else the forward's without its "Fwd:".
    let subject: String?

    /// The agent who forwarded `mail` and the customer's mail in it. A forward's outer blocks may
    /// be a colleague's or the desk's own (a forward of a forward; a thread the agent had answered):
    /// the customer is the first sender who is none of the desk's, nor a machine.
    static func of(_ mail: ParsedMail, ownAddress: String?, on connection: PostgresConnection, logger: Logger) async throws -> ForwardingAgent? {
        guard mail.classification == .customer, mail.mayBeForward, let from = mail.from?.address,
              let domain = from.split(separator: "@").last.map({ $0.lowercased() }), isAuthenticated(mail, domain: domain) else { return nil }
        let agentRows = try await connection.run("SELECT id FROM agents WHERE active AND lower(email) = lower(\(from))", logger: logger)
        var agent: UUID?
        for try await id in agentRows.decode(UUID.self) { agent = id }
        guard let agentID = agent else { return nil }

        // A large mail's forwards are read off the cooperative pool, as `EmailIngest.parse` reads mail.
        let forwards = mail.text.utf8.count + mail.attachments.reduce(0) { $0 + $1.content.count } > EmailIngest.inlineParseLimit
            ? try await NIOThreadPool.singleton.runIfActive { mail.forwardedMails() }
            : mail.forwardedMails()
        let candidates = forwards.compactMap { forward in EmailIngest.usableSender(forward.from).map { (forward, $0) } }
        guard !candidates.isEmpty else { return nil }
        let desks = try await connection.run("""
            SELECT lower(email) FROM agents WHERE active AND lower(email) = ANY(\(candidates.map { $0.1.address.lowercased() }))
            """, logger: logger)
        var theirs: Set<String> = [from.lowercased()]
        for try await address in desks.decode(String.self) { theirs.insert(address) }
        let own = ownAddress.map(AutomaticReply.baseAddress)
        guard let (forward, original) = candidates.first(where: { _, sender in
            !theirs.contains(sender.address.lowercased()) && AutomaticReply.baseAddress(sender.address) != own
                && !AutomaticReply.isMachineAddress(sender.address)
        }) else { return nil }
        return ForwardingAgent(agentID: agentID, address: from, original: original, forward: forward,
                               subject: forward.subject ?? ForwardedMail.withoutForwardPrefix(mail.subject))
    }

    /// The topmost `Authentication-Results` (RFC 8601), the receiving MTA's, says `domain` vouches
    /// for the mail: `dmarc=pass`, or `dkim=pass` with a signing domain (`header.d`) of `domain`.
    /// Lower fields are the sender's to write; an MTA removes those claiming its own name (§5).
    static func isAuthenticated(_ mail: ParsedMail, domain: String) -> Bool {
        guard let field = mail.root.headers.all("Authentication-Results").first else { return false }
        // "authserv-id; method=result property=value …; method=result …"
        for result in field.text.lowercased().split(separator: ";").dropFirst() {
            let words = result.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })
            if words.first == "dmarc=pass" { return true }
            if words.first == "dkim=pass", words.contains(where: { $0 == "header.d=\(domain)" }) { return true }
        }
        return false
    }

    /// What the agent wrote above the forward, as their internal note on the ticket.
    func addNote(on ticket: ConversationIntake.Target, on connection: PostgresConnection, logger: Logger) async throws {
        let body = Text.clean(forward.note)
        guard !body.isEmpty else { return }
        try await MessageStore(logger: logger).insertServiceNote(
            ticketID: ticket.id, customerID: ticket.customerID, channel: .email, agentID: agentID, body: Text.limit(body, 20_000),
            source: "forwarded_mail", on: connection)
    }
}
