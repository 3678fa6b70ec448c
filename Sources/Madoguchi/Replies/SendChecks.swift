import Foundation
import Logging
import PostgresNIO

/// The checks a reply passes, in the transaction that sends (or submits) it, so what was checked is
/// what goes out: nothing new from the customer since the agent looked (traffic cop), then every
/// guard — placeholders and warning words, an attachment the text mentions, recipients that are the
/// customer's own, a greeting that names the customer and no one else.
struct SendChecks: Sendable {
    let logger: Logger
    /// Words a team never wants to send (configured), refused like placeholders.
    let warningWords: [String]

    /// Throws the first problem found. A recipient known to be undeliverable stops the send unless
    /// the sender confirmed it (`confirmUndeliverable`), naming the customer's other identities.
    /// Returns what the confirmations let through (`Overrides`): an undeliverable recipient, findings.
    /// `reader` is the agent whose `lastSeen` it is (who sends or submits): their own notes since
    /// are nothing new to them. Findings of the `confirmed` kinds (only those a person can judge
    /// wrong: `overridable`) do not stop it; the kinds that had findings come back as overridden.
    @discardableResult
    func check(_ reply: Reply, ticket: Ticket, lastSeen: UUID?, reader: UUID?, confirmUndeliverable: Bool,
               confirmed: Set<SendGuard.Finding.Kind> = [], on connection: PostgresConnection) async throws -> Overrides {
        try await trafficCop(ticketID: ticket.id, lastSeen: lastSeen, reader: reader, on: connection)
        let store = ReplyStore(logger: logger)
        let attachments = try await store.attachments(of: reply.id, on: connection)
        var findings = SendGuard.checkSubject(reply.subject ?? "", customerSubject: ticket.subject, extraWarningWords: warningWords)
        findings += SendGuard.check(body: reply.body, attachmentCount: attachments.count, extraWarningWords: warningWords,
                                    customerWords: try await quotableWords(reply.body, ticket: ticket, on: connection))
        findings += attachments.flatMap { SendGuard.checkFileName($0.filename, extraWarningWords: warningWords) }
        findings += try await recipientFindings(reply.recipients, channel: reply.channel, customerID: ticket.customerID, on: connection)
        if reply.channel == .sms { findings += SendGuard.checkSMSLength(reply.body) }
        if reply.channel == .chat, reply.recipients.contains(where: { ProviderDelivery.chatAddress($0).provider == "line" }) {
            findings += SendGuard.checkLINELength(reply.body)
        }
        findings += try await greetingFindings(reply.body, customerID: ticket.customerID, on: connection)
        findings += try await subjectNameFindings(reply.subject ?? "", ticketSubject: ticket.subject, customerID: ticket.customerID, on: connection)
        // What has no place in the body (the subject, a file's name, a recipient) first, then the
        // body's findings as they are read, top to bottom: a greeting's line 1 had come after line 3.
        findings = findings.enumerated().sorted { a, b in
            let (left, right) = ((a.element.line ?? 0, a.element.column ?? 0, a.offset), (b.element.line ?? 0, b.element.column ?? 0, b.offset))
            return left < right
        }.map(\.element)
        let waived = confirmed.intersection(Self.overridable)
        let overridden = Set(findings.map(\.kind)).intersection(waived)
        findings.removeAll { waived.contains($0.kind) }
        if let first = findings.first { throw Problem.sendGuard(first.kind, findings) }
        let findingsConfirmed = overridden.map(\.rawValue).sorted()
        let undeliverable = try await store.undeliverableRecipients(reply.recipients, customerID: ticket.customerID, on: connection)
        guard !undeliverable.isEmpty else { return Overrides(undeliverable: false, findings: findingsConfirmed) }
        guard confirmUndeliverable else {
            let others = try await store.deliverableIdentities(ofTicket: ticket.id, excluding: reply.recipients, on: connection)
            throw Problem.recipientUndeliverable(undeliverable, alternatives: others)
        }
        return Overrides(undeliverable: true, findings: findingsConfirmed)
    }

    /// What the sender's confirmations let through: an undeliverable recipient, and guards' findings by kind.
    struct Overrides: Sendable {
        var undeliverable: Bool
        var findings: [String]
    }

    /// The guards a person may override: each misreads ordinary text now and then (a model number
    /// "XX-100", "添付ファイルではなく…"); a wrong customer's name or recipient is never waved through.
    static let overridable: Set<SendGuard.Finding.Kind> = [.leftoverPlaceholder, .missingAttachment]

    /// What the customer wrote on the ticket (its subject and their latest messages), which a quoted
    /// line of the reply may repeat: read only when the reply quotes something.
    private func quotableWords(_ body: String, ticket: Ticket, on connection: PostgresConnection) async throws -> String? {
        guard SendGuard.quotesAnything(body) else { return nil }
        let rows = try await connection.run("""
            SELECT string_agg(left(m.body_text, 100000), E'\\n') FROM (
                SELECT body_text FROM messages
                WHERE ticket_id IN (SELECT ticket_id FROM ticket_timeline(\(ticket.id)))
                  AND direction = 'inbound' AND body_text IS NOT NULL
                ORDER BY created_at DESC LIMIT 50) AS m
            """, logger: logger)
        var words = ticket.subject
        for try await text in rows.decode(String?.self) { words += "\n" + (text ?? "") }
        return words
    }

    /// Refuses the send when anything arrived after the message the agent last saw but the agent's own
    /// internal notes. A colleague's note counts (a 申し送り "do not send, refund first" written while
    /// the agent composed), and so does the agent's own reply: a second draft sent from another tab,
    /// or one created twice by a retry, went out beside the first, the customer answered twice by
    /// one agent (二重返信 all the same). A reply's `message_id` is the newest message after its send.
    /// The timeline holds the messages of tickets merged into this one (`TicketStore.messages`); those
    /// arrived on it when their ticket was merged: an agent who read the timeline before a merge has
    /// not seen the duplicate's mail, however old it is, and one who read it after has.
    private func trafficCop(ticketID: UUID, lastSeen: UUID?, reader: UUID?, on connection: PostgresConnection) async throws {
        if let lastSeen {
            let known = try await connection.run("""
                SELECT 1 FROM messages WHERE id = \(lastSeen)
                  AND ticket_id IN (SELECT ticket_id FROM ticket_timeline(\(ticketID)))
                """, logger: logger)
            var found = false
            for try await _ in known { found = true }
            guard found else {
                throw Problem.validationFailed([.init(pointer: "/last_seen_message_id", message: "is not a message of this ticket")])
            }
        }
        let rows = try await connection.run("""
            WITH seen AS (
                -- greatest() passes over NULL: a message of this ticket arrived when it was written.
                SELECT m.created_at, m.id, greatest(m.created_at, t.merged_at) AS arrived
                FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.id = \(lastSeen)
            )
            SELECT m.id FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE m.ticket_id IN (SELECT ticket_id FROM ticket_timeline(\(ticketID)))
              AND NOT coalesce(m.direction = 'internal' AND m.author_agent_id = \(reader), false)
              AND (\(lastSeen)::uuid IS NULL
                   OR CASE WHEN t.id = \(ticketID) THEN (m.created_at, m.id) > (SELECT created_at, id FROM seen)
                           ELSE t.merged_at > (SELECT arrived FROM seen) END)
            ORDER BY m.created_at, m.id
            """, logger: logger)
        var newer: [UUID] = []
        for try await id in rows.decode(UUID.self) { newer.append(id) }
        guard newer.isEmpty else {
            var problem = Problem(.newActivity, status: .conflict, title: "New messages since you looked",
                                  detail: lastSeen == nil
                                      ? "The send names no last_seen_message_id (the newest message of this ticket you have read), so all \(newer.count) message(s) count as unread; read them and send again naming it."
                                      : "\(newer.count) message(s) arrived on this ticket after the one you last saw; read them before sending.")
            problem.members["new_message_ids"] = .strings(newer.map(\.lowercased))
            throw problem
        }
    }

    /// Every recipient must be an identity of the ticket's customer, of a kind the reply's channel
    /// sends to: never another customer's address, nor (say) the customer's LINE id as an SMS number.
    private func recipientFindings(
        _ recipients: [String], channel: Channel, customerID: UUID, on connection: PostgresConnection
    ) async throws -> [SendGuard.Finding] {
        let kinds = ReplyDesk.recipientKinds(of: channel)
        let rows = try await connection.run("""
            SELECT value FROM customer_identities WHERE customer_id = \(customerID) AND kind = ANY(\(kinds))
            """, logger: logger)
        var known = Set<String>()
        for try await value in rows.decode(String.self) { known.insert(IdentityValue.comparable(value)) }
        var findings = recipients.filter { !known.contains(IdentityValue.comparable($0)) }.map {
            SendGuard.Finding(kind: .unknownRecipient, message: "\($0) is not an address of this ticket's customer that \(channel == .email ? "an" : "a") \(channel.rawValue) reply can go to",
                              text: $0)
        }
        if channel == .sms {
            findings += recipients.compactMap { recipient in
                PhoneNumber.smsRefusal(recipient).map {
                    SendGuard.Finding(kind: .notAMobileNumber, message: "\($0) and cannot receive a text message; answer by phone or another channel",
                                      text: recipient)
                }
            }
        }
        return findings
    }

    /// A greeting that names another of our customers ("佐藤様" or "佐藤 次郎様" on Yamada's ticket)
    /// is refused. A greeting matches a name whole or by one of its parts (the family name alone is
    /// the commonest greeting); the ticket's customer includes everyone merged into them, and a
    /// greeting found anywhere in their name is theirs (山田様 for 株式会社山田商店). When the ticket's
    /// customer has no name on record, or only one in another script (Hanako Yamada, greeted 山田様;
    /// ヤマダ ハナコ from a mail's From or a LINE name, greeted in kanji, which kana cannot be checked
    /// against), only another customer's whole name counts: a family name alone proves nothing then,
    /// and common ones belong to many customers. The second part runs
    /// only for a greeting that is not the customer's; its ORDER BY keeps it on the name index (with a
    /// bare LIMIT the planner may hope to find a row early by a scan of every customer).
    /// Both sides fold variant kanji (`name_variants_folded`, migration 0100): 高橋様 greets 髙橋.
    private func greetingFindings(_ body: String, customerID: UUID, on connection: PostgresConnection) async throws -> [SendGuard.Finding] {
        guard let (name, line) = SendGuard.greetedName(in: body) else { return [] }
        return try await otherCustomersName(name, customerID: customerID, on: connection).map {
            [SendGuard.Finding(kind: .wrongCustomerName, message: "the greeting names \($0), another customer", line: line, column: 1, text: $0)]
        } ?? []
    }

    /// The subject addressed to someone (佐藤 次郎様 お見積りのご案内), checked as the greeting is: a
    /// template copied from another customer's ticket kept their name there. A name the customer's
    /// own subject holds is theirs to name (佐藤様宛の荷物について, a gift's recipient).
    private func subjectNameFindings(_ subject: String, ticketSubject: String, customerID: UUID, on connection: PostgresConnection) async throws
        -> [SendGuard.Finding] {
        // Without Re:, Fwd: and our token, which would read as part of the name.
        guard let (name, _) = SendGuard.greetedName(in: ThreadSubject.withoutPrefixes(Text.oneLine(subject))),
              !SendGuard.normalizedName(ticketSubject).contains(name) else { return [] }
        return try await otherCustomersName(name, customerID: customerID, on: connection).map {
            [SendGuard.Finding(kind: .wrongCustomerName, message: "the subject names \($0), another customer", text: $0)]
        } ?? []
    }

    /// Another customer's name, when `name` (greeted) is not the customer's own and names someone else.
    private func otherCustomersName(_ name: String, customerID: UUID, on connection: PostgresConnection) async throws -> String? {
        // A family name greeted alone may begin a name stored without spaces ("佐藤" of "佐藤次郎"):
        // Japanese names only (an English one rarely is stored so, and "sato" begins "satoshi").
        let byPrefix = name.count >= 2 && name.unicodeScalars.contains { !$0.isASCII }
        let rows = try await connection.run("""
            WITH ours AS (
                SELECT bool_or(customer_name_parts(display_name) @> ARRAY[name_variants_folded(\(name))]::text[]
                               OR strpos(customer_greeting_name(display_name), name_variants_folded(\(name))) > 0) AS greeted,
                       bool_or(display_name IS NOT NULL AND (display_name ~ '[^[:ascii:]]') = (\(name) ~ '[^[:ascii:]]')
                               AND (display_name ~ '[㐀-䶿一-鿿豈-﫿々〆]' OR \(name) !~ '[㐀-䶿一-鿿豈-﫿々〆]')) AS named
                FROM customers WHERE id = \(customerID) OR merged_into = \(customerID)
            )
            SELECT other.display_name
            FROM ours
            CROSS JOIN LATERAL (
                SELECT c.display_name FROM customers c
                WHERE c.display_name IS NOT NULL
                  AND (customer_name_parts(c.display_name) @> ARRAY[name_variants_folded(\(name))]::text[]
                       OR (\(byPrefix) AND customer_greeting_name(c.display_name) COLLATE "C" >= name_variants_folded(\(name))
                           AND customer_greeting_name(c.display_name) COLLATE "C" < name_variants_folded(\(name)) || chr(1114111)))
                  AND c.id <> \(customerID) AND c.merged_into IS DISTINCT FROM \(customerID)
                  AND (coalesce(ours.named, false) OR customer_greeting_name(c.display_name) = name_variants_folded(\(name)))
                ORDER BY c.created_at, c.id LIMIT 1) AS other
            WHERE NOT coalesce(ours.greeted, false)
            """, logger: logger)
        for try await other in rows.decode(String.self) { return other }
        return nil
    }
}
