import Foundation
import Logging
import MadoguchiMail
import PostgresNIO

/// Which ticket a customer's mail belongs to, in the order of how sure we can be, with the reason:
/// 1. In-Reply-To / References naming a Message-ID we hold (ours or the customer's);
/// 2. our ticket token (`[#1234]` in the subject, `support+t1234@` in the recipients);
/// 3. for mail without usable thread headers, the same customer's recent open ticket with the same
///    subject (replies, and carrier mail, which drops the headers).
/// Never files one customer's mail into another customer's ticket: a token or header naming a ticket
/// the sender has no part in starts a new ticket linked to it.
struct EmailThreader: Sendable {
    let logger: Logger
    let subjectWindow: Duration
    /// Our support address (`MADOGUCHI_MAIL_FROM`): only its plus addresses (`support+t1234@…`)
    /// name a ticket. A friend's `taro+t2024@gmail.com` in Cc is no token of ours. Unset, any is read.
    var ownAddress: String? = nil

    enum Decision: Sendable, Equatable {
        case existing(UUID, reason: String)
        case new(relatedTo: UUID?, reason: String)
    }

    /// A message we hold that a mail's thread headers name, with its ticket: read for the threader
    /// with the mail's first read (`InboundPayloadStore.firstAnswer`, `threadIDs`), a round trip
    /// fewer for every reply.
    struct HeaderMatch: Sendable, Decodable {
        var emailMessageID: String
        var ticketID: UUID
        var ticketCustomerID: UUID
        var messageCustomerID: UUID?
        var fromAddress: String?
        var toAddresses: [String]?

        enum CodingKeys: String, CodingKey {
            case emailMessageID = "email_message_id", ticketID = "ticket_id", ticketCustomerID = "ticket_customer_id"
            case messageCustomerID = "message_customer_id", fromAddress = "from_address", toAddresses = "to_addresses"
        }

        static func decode(_ json: String) throws -> [HeaderMatch] {
            try JSONDecoder().decode([HeaderMatch].self, from: Data(json.utf8))
        }
    }

    /// The Message-IDs a mail's thread headers name, the most specific first: the message answered,
    /// then the thread from its newest end.
    static func headerCandidates(of mail: ParsedMail) -> [(id: String, reason: String)] {
        mail.inReplyTo.map { ($0, "in-reply-to") } + mail.references.reversed().map { ($0, "references") }
    }

    /// `headerMatches`: the messages `headerCandidates(of: mail)` name, as the mail's first read found them.
    func thread(
        _ mail: ParsedMail, sender: MailAddress?, customerID: UUID?, headerMatches: [HeaderMatch], on connection: PostgresConnection
    ) async throws -> Decision {
        if let decision = byHeaders(mail, sender: sender, customerID: customerID, matches: headerMatches) { return decision }
        if let decision = try await byToken(mail, customerID: customerID, on: connection) { return decision }
        if let customerID, let decision = try await bySubject(mail, sender: sender, customerID: customerID, on: connection) { return decision }
        return .new(relatedTo: nil, reason: "new-ticket")
    }

    /// The message a thread header names, on the ticket of a conversation the sender takes part in.
    /// A Message-ID is not unique in practice (a mailer that numbers from 1 on every host, two
    /// customers' identical generators): every message under it is tried, and one whose
    /// conversation the sender is in wins over the first found. The support address itself is no
    /// participant: it is on every message, and a mail from it (a colleague answering from a mail
    /// program) would otherwise join any ticket it names.
    private func byHeaders(_ mail: ParsedMail, sender: MailAddress?, customerID: UUID?, matches: [HeaderMatch]) -> Decision? {
        for (id, reason) in Self.headerCandidates(of: mail) {
            let named = matches.filter { $0.emailMessageID == id }
            guard let first = named.first else { continue }
            if let match = named.first(where: { isParticipant(sender: sender, customerID: customerID, in: $0) }) {
                return .existing(match.ticketID, reason: reason)
            }
            return .new(relatedTo: first.ticketID, reason: "header-foreign-sender")
        }
        return nil
    }

    private func isParticipant(sender: MailAddress?, customerID: UUID?, in match: HeaderMatch) -> Bool {
        if let customerID, customerID == match.ticketCustomerID || customerID == match.messageCustomerID { return true }
        guard let address = sender?.address.lowercased(), !isOwn(address) else { return false }
        return ((match.toAddresses ?? []) + [match.fromAddress].compactMap { $0 }).contains { $0.lowercased() == address }
    }

    /// The support address, or one of its plus forms (`support+t1234@`).
    private func isOwn(_ address: String) -> Bool {
        guard let ownAddress else { return false }
        return address == ownAddress.lowercased() || ThreadSubject.isPlusAddress(address, of: ownAddress)
    }

    private func byToken(_ mail: ParsedMail, customerID: UUID?, on connection: PostgresConnection) async throws -> Decision? {
        guard let (ticketID, ticketCustomer) = try await tokenTicket(of: mail, on: connection) else { return nil }
        return customerID == ticketCustomer ? .existing(ticketID, reason: "ticket-token") : .new(relatedTo: ticketID, reason: "token-foreign-sender")
    }

    /// The ticket our token names (`[#1234]` in the subject, `support+t1234@` among the recipients),
    /// and its customer; whose mail it is is the caller's to judge.
    func tokenTicket(of mail: ParsedMail, on connection: PostgresConnection) async throws -> (id: UUID, customerID: UUID)? {
        let number = ThreadSubject.ticketNumber(in: mail.subject)
            ?? (mail.to + mail.cc).lazy.filter { ThreadSubject.isPlusAddress($0.address, of: ownAddress) }
                .compactMap { ThreadSubject.ticketNumber(inAddress: $0.address) }.first
        guard let number else { return nil }
        let rows = try await connection.run("SELECT id, customer_id FROM tickets WHERE number = \(number)", logger: logger)
        for try await row in rows.decode((UUID, UUID).self) { return row }
        return nil
    }

    private func bySubject(_ mail: ParsedMail, sender: MailAddress?, customerID: UUID, on connection: PostgresConnection) async throws -> Decision? {
        // Cleaned as the ticket's own subject was when it was opened (a NUL cannot be a query's text).
        let reduced = ThreadSubject.reduce(mail.subject.map(Text.clean))
        let fromCarrier = sender.map { ThreadSubject.isCarrierAddress($0.address) } ?? false
        guard !reduced.key.isEmpty, reduced.isReply || fromCarrier else { return nil }
        let seconds = Double(subjectWindow.components.seconds)
        // A duplicate merged into another ticket is closed but still answers to its subject: the
        // intake's lock then follows it to the ticket it went into. Its conversation goes on there,
        // so the window runs from the survivor's latest customer message too: the duplicate's own
        // stops at the merge, and a carrier mail without thread headers a week on was a new ticket.
        let rows = try await connection.rows("""
            SELECT id FROM (
                SELECT id, updated_at, last_customer_message_at, created_at FROM tickets
                WHERE customer_id = \(customerID) AND thread_subject = \(reduced.key) AND status <> 'closed'
                UNION ALL
                SELECT d.id, d.updated_at, greatest(d.last_customer_message_at, survivor.last_customer_message_at), d.created_at
                FROM tickets d JOIN tickets survivor ON survivor.id = d.merged_into
                WHERE d.customer_id = \(customerID) AND d.thread_subject = \(reduced.key) AND d.merged_into IS NOT NULL
            ) AS candidate
            WHERE coalesce(last_customer_message_at, created_at) > now() - make_interval(secs => \(seconds)::float8)
            ORDER BY updated_at DESC
            LIMIT 1
            """, preparedAs: BySubject.self, logger: logger)
        return try rows.first.map { .existing(try $0.decode(UUID.self), reason: "subject") }
    }

    /// Every reply without thread headers that names no ticket asks.
    private enum BySubject: PreparedSite { static let name = "madoguchi_thread_by_subject" }
}
