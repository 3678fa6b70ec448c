import Foundation
import Logging
import MadoguchiMail
import PostgresNIO

/// An agent who forwarded a customer's mail to the support address (a customer wrote to the
/// owner's own address; the owner sends it on). The desk files it under the customer who wrote it,
/// not under the agent: otherwise the agent became a customer, and the reply went to them.
///
/// Believed only from an active agent's address in a mail its domain does not disown (DMARC):
/// anyone can write a forward's header block, and a stranger's "forward" would make the desk open a
/// ticket for, and write to, whomever they named.
struct ForwardingAgent: Sendable {
    let agentID: UUID
    /// The agent's address, as the mail's From gave it.
    let address: String
    /// The original sender, as their identity is stored (`EmailIngest.usableSender`).
    let original: MailAddress
    let forward: ForwardedMail
    /// The original's subject, else the forward's without its "Fwd:".
    let subject: String?

    /// The agent who forwarded `mail`, when `forward` is what it forwards and an agent sent it.
    static func of(_ mail: ParsedMail, forward: ForwardedMail?, on connection: PostgresConnection, logger: Logger) async throws -> ForwardingAgent? {
        guard let forward, let original = EmailIngest.usableSender(forward.from), let from = mail.from?.address,
              !AutomaticReply.failsDMARC(mail) else { return nil }
        let rows = try await connection.run(
            "SELECT id FROM agents WHERE active AND lower(email) = lower(\(from))", logger: logger)
        for try await agentID in rows.decode(UUID.self) {
            return ForwardingAgent(agentID: agentID, address: from, original: original, forward: forward,
                                   subject: forward.subject ?? ForwardedMail.withoutForwardPrefix(mail.subject))
        }
        return nil
    }

    /// What the agent wrote above the forward, as their internal note on the ticket.
    func addNote(on ticket: ConversationIntake.Target, on connection: PostgresConnection, logger: Logger) async throws {
        let body = Text.clean(forward.note)
        guard !body.isEmpty else { return }
        let note = try await MessageStore(logger: logger).insertNote(
            ticketID: ticket.id, channel: .email, agentID: agentID, body: Text.limit(body, 20_000),
            metadata: ["mentions": [String](), "source": "forwarded_mail"], on: connection)
        try await EventStore(logger: logger).record(
            .noteAdded, ticketID: ticket.id, customerID: ticket.customerID, messageID: note.id, actor: nil,
            data: ["mentions": [String]()], on: connection)
    }
}
