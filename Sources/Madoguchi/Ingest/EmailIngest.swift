import Crypto
import Foundation
import Logging
import MadoguchiMail
import NIOPosix
import PostgresNIO

/// Takes one raw mail in: stores its bytes, reads it, decides what it is and where it belongs, and
/// writes the customer, ticket, message and attachments it makes — all in one transaction, so the
/// answer a gateway gets describes exactly what was committed.
///
/// Retries are safe three ways: the same `Idempotency-Key` (and bytes) replays the first answer;
/// the same Message-ID (or, for mail without one, the same bytes) is one message however often and
/// however concurrently it arrives (an advisory lock on it serializes the attempts).
struct EmailIngest: Sendable {
    let database: Database
    let logger: Logger
    let subjectWindow: Duration
    var automaticReply = AutomaticReply.Settings()
    /// Mail a web form on the shop's site sent for a customer (`MADOGUCHI_FORM_MAIL_FROM`).
    var formRelay = FormRelay(formAddresses: [], ownAddress: nil)

    typealias Outcome = InboundOutcome

    var payloads: InboundPayloadStore { InboundPayloadStore(logger: logger) }
    var identities: IdentityStore { IdentityStore(logger: logger) }
    var resolver: IdentityResolver { IdentityResolver(logger: logger) }
    var intake: ConversationIntake { ConversationIntake(logger: logger) }
    var events: EventStore { EventStore(logger: logger) }

    func ingest(_ bytes: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> IngestAnswer {
        // Parsing is CPU work; do it before taking a connection.
        let mail = try await Self.parse(bytes)
        let readable = unreadableReason(mail, bytes: bytes) == nil
        let providerID = Self.providerID(of: mail, bytes: bytes)
        return try await database.withTransaction { connection in
            if let outcome = try await payloads.replay(idempotencyKey: idempotencyKey, channel: .email, apiKeyID: apiKeyID, body: bytes, on: connection) {
                return .replayed(outcome)
            }
            let payloadID = try await payloads.insert(
                channel: .email, idempotencyKey: idempotencyKey, body: bytes, contentType: "message/rfc822", apiKeyID: apiKeyID,
                thenLock: readable ? lockKeys(of: mail, providerID: providerID) : [], on: connection)
            return try await process(mail, bytes: bytes, payloadID: payloadID, providerLocked: readable, on: connection)
        }
    }

    /// The same mail, however it is retried, is one message: its Message-ID, or for a mail without
    /// one the digest of what its sender wrote (`sendersBytes`).
    static func providerID(of mail: ParsedMail, bytes: [UInt8]) -> String {
        mail.messageID ?? "sha256:" + SHA256.hash(data: sendersBytes(of: bytes)).lowercaseHex
    }

    /// The mail without what relays add on the way: trace fields (Received, Return-Path,
    /// Delivered-To, Authentication-Results, ARC-…) and X- fields dropped, the others in DKIM's
    /// relaxed form (unfolded, white space runs as one), line ends as LF. The same mail retried by its
    /// sender's server, or arriving through two MX hosts, gives the same bytes; a digest of the raw
    /// bytes did not.
    static func sendersBytes(of bytes: [UInt8]) -> [UInt8] {
        // Line ends as LF first: a relay's stray CRs must not hide the blank line after the header.
        let (fields, body) = DKIMCanonicalization.split(bytes.filter { $0 != 0x0D })
        let added: Set<String> = ["received", "return-path", "delivered-to", "authentication-results", "received-spf",
                                  "dkim-filter", "envelope-to", "original-recipient"]
        var kept: [UInt8] = []
        for field in fields {
            let relaxed = DKIMCanonicalization.relaxedHeader(name: field.name, value: field.value)
            let name = relaxed.prefix { $0 != ":" }
            if added.contains(String(name)) || name.hasPrefix("x-") || name.hasPrefix("arc-") { continue }
            kept += Array(relaxed.utf8) + [0x0A]
        }
        return kept + [0x0A] + body
    }

    /// The id of a mail whose Message-ID another sender's mail already has.
    static func collidingID(_ messageID: String, sender: String) -> String {
        "sha256:" + SHA256.hash(data: Array("\(messageID)\n\(sender.lowercased())".utf8)).lowercaseHex
    }

    /// The advisory lock that serializes every attempt to take in one mail.
    static func lockKey(_ providerID: String) -> String { "email-message:\(providerID)" }

    /// The locks a readable mail is taken in under, in order: the message's, then its sender's
    /// identity's (`filedSender`), which the mail's first read relies on. (An agent's forward takes
    /// its original sender's lock after these: `ForwardingAgent`.)
    func lockKeys(of mail: ParsedMail, providerID: String) -> [String] {
        [Self.lockKey(providerID)] + (filedSender(of: mail).map { [IdentityStore.lockKey(kind: .email, value: $0.address)] } ?? [])
    }

    /// Runs a stored payload through ingest again (after a fix for one that could not be read).
    func reprocess(payloadID: UUID) async throws -> IngestAnswer {
        try await database.withTransaction { connection in
            let rows = try await connection.run(
                "SELECT channel, parse_status FROM inbound_payloads WHERE id = \(payloadID) FOR UPDATE", logger: logger)
            var found: (String, String)?
            for try await row in rows.decode((String, String).self) { found = row }
            guard let (channel, status) = found else { throw Problem.notFound("There is no inbound payload \(payloadID.uuidString.lowercased()).") }
            guard channel == Channel.email.rawValue else {
                throw Problem(.alreadyProcessed, status: .conflict, title: "Not reprocessable",
                              detail: "Only email payloads can be reprocessed; this one came in on \(channel).")
            }
            if status == "parsed", let record = try await payloads.record(id: payloadID, on: connection), let outcome = record.outcome {
                return .replayed(outcome)
            }
            guard status != "rejected" else {
                throw Problem(.alreadyProcessed, status: .conflict, title: "Rejected payload", detail: "This payload was rejected on arrival and is kept for the record only.")
            }
            let bytes = try await payloads.rawBody(id: payloadID, on: connection)?.bytes ?? []
            return try await process(try await Self.parse(bytes), bytes: bytes, payloadID: payloadID, providerLocked: false, on: connection)
        }
    }

    /// Mails larger than `inlineParseLimit` are parsed on NIO's blocking-work threads, not on Swift's
    /// cooperative pool: that pool has one thread per core, shared by every request and by the
    /// server's accept loop, and a large or pathological mail (10,000 nested multiparts) is seconds of
    /// CPU. Two of those parsed there would stall everything else; there they only take longer
    /// themselves. Most mail is a few kilobytes, parsed in a fraction of a millisecond: sending it to
    /// another thread and back cost more in wake-ups than the parse.
    static func parse(_ bytes: [UInt8]) async throws -> ParsedMail {
        if bytes.count <= inlineParseLimit { return ParsedMail(bytes) }
        return try await NIOThreadPool.singleton.runIfActive { ParsedMail(bytes) }
    }

    /// 64 KiB: a couple of milliseconds at the parser's worst measured speed.
    static let inlineParseLimit = 64 * 1024

    // MARK: - One mail

    /// `providerLocked`: the mail's lock, and its sender's identity's, were taken when its payload was stored.
    private func process(
        _ mail: ParsedMail, bytes: [UInt8], payloadID: UUID, providerLocked: Bool, on connection: PostgresConnection
    ) async throws -> IngestAnswer {
        if let reason = unreadableReason(mail, bytes: bytes) {
            var outcome = Outcome(inboundID: payloadID, channel: .email, parseStatus: .failed)
            outcome.parseError = reason
            outcome.defects = mail.defects.map(Text.clean)
            try await payloads.finish(payloadID, providerMessageID: nil, answer: .ingest(.keptUnreadable(outcome)), messageID: nil, on: connection)
            return .keptUnreadable(outcome)
        }

        var providerID = Self.providerID(of: mail, bytes: bytes)
        // A stored payload reprocessed takes the locks a new one took with its insert.
        if !providerLocked { try await AdvisoryLock.take(lockKeys(of: mail, providerID: providerID), on: connection, logger: logger) }
        // Under both locks: whether the mail was taken in before, and who its sender is, in one read.
        let identities = filedSender(of: mail).map { [(kind: Customer.Identity.Kind.email, value: $0.address)] } ?? []
        let threadIDs = Self.isFiled(mail) ? EmailThreader.headerCandidates(of: mail).map(\.id) : []
        var read = try await payloads.firstAnswer(
            channel: .email, provider: "", providerMessageID: providerID, excluding: payloadID, ownersOf: identities,
            threadIDs: threadIDs, on: connection)
        // The same Message-ID from someone else is not a retry of that mail (a mailer reusing ids, or
        // a copied one): it is taken in under an id of its own, which its own retries find.
        // (`firstSender` of an agent's forward is the agent: `InboundPayloadStore.firstAnswer`.)
        // A first mail that made no message (an auto-reply answering nothing, a report on nothing of
        // ours) has no sender to compare: only the same bytes are a retry of it. Another mail under
        // its id was answered as that retry, and a customer's question behind a mailer's reused id
        // (`<1@localhost.localdomain>`) was never stored.
        let differsFromSilentFirst = try await {
            guard let first = read.first, first.messageID == nil, read.firstSender == nil else { return false }
            return try await !payloads.hasPayload(channel: .email, provider: "", providerMessageID: providerID, excluding: payloadID,
                                                  body: bytes, on: connection)
        }()
        if let sender = mail.from?.address, !sender.isEmpty, let messageID = mail.messageID,
           differsFromSilentFirst || read.firstSender.map({ $0.lowercased() != sender.lowercased() }) == true {
            providerID = Self.collidingID(messageID, sender: sender)
            read = try await payloads.firstAnswer(
                channel: .email, provider: "", providerMessageID: providerID, excluding: payloadID, ownersOf: identities,
                threadIDs: threadIDs, on: connection)
        }
        let senderOwner = IdentityStore.OwnersRead(identities, read.owners)
        if let (firstMessage, outcome) = read.first {
            try await payloads.finish(payloadID, providerMessageID: providerID, answer: .ingest(.replayed(outcome)), messageID: firstMessage, on: connection)
            return .replayed(outcome)
        }

        var outcome = Outcome(inboundID: payloadID, channel: .email)
        outcome.classification = Message.Classification(mail.classification)
        outcome.defects = mail.defects.isEmpty ? nil : mail.defects.map(Text.clean)
        let delivery = Delivery(mail: mail, payloadID: payloadID, providerID: providerID, threadMatches: read.threadMatches)
        switch mail.classification {
        case .bounce, .feedbackReport, .deliveryReport:
            try await takeReport(delivery, outcome: &outcome, on: connection)
        case .customer, .autoReply:
            try await takeCustomerMail(delivery, senderOwner: senderOwner, senderUndeliverable: read.undeliverable.contains(0), outcome: &outcome, on: connection)
        }
        try await payloads.finish(payloadID, providerMessageID: providerID, answer: .ingest(.taken(outcome)), messageID: outcome.messageID, on: connection)
        return .taken(outcome)
    }

    /// One stored mail on its way in.
    private struct Delivery {
        let mail: ParsedMail
        let payloadID: UUID
        /// The Message-ID, or the bytes' digest for a mail without one.
        let providerID: String
        /// The messages its thread headers name, read with its first read.
        let threadMatches: [EmailThreader.HeaderMatch]

        func message(ticketID: UUID, customerID: UUID, threadingReason: String?, forwardedBy: ForwardingAgent?,
                     relayed: FormRelay.Relayed? = nil) throws -> NewMessage {
            try NewMessage(mail: mail, payloadID: payloadID, providerID: providerID, ticketID: ticketID, customerID: customerID,
                           threadingReason: threadingReason, forwardedBy: forwardedBy, relayed: relayed)
        }
    }

    /// Nothing recognisable as a mail: empty, or not one header field.
    private func unreadableReason(_ mail: ParsedMail, bytes: [UInt8]) -> String? {
        if bytes.allSatisfy({ $0 == 0x0A || $0 == 0x0D || $0 == 0x20 || $0 == 0x09 }) { return "the body is empty" }
        if mail.isUnreadable { return "not a mail: no header field before the first blank line" }
        return nil
    }

    // MARK: - A customer's mail (or their auto-reply)

    /// The sender a customer's mail is filed under, its address in the form its identity is stored
    /// in (`IdentityValue.email`): the customer a web form relayed it for (`FormRelay`), else its
    /// From when that is a usable address.
    func sender(of mail: ParsedMail) -> MailAddress? {
        sender(of: mail, relayed: formRelay.relayed(mail))
    }

    /// As `sender(of:)`, with the form's relay already read.
    private func sender(of mail: ParsedMail, relayed: FormRelay.Relayed?) -> MailAddress? {
        relayed?.customer ?? mail.from.flatMap(Self.usableSender)
    }

    /// An address as a sender's identity stores it, or nil when it cannot be one.
    static func usableSender(_ from: MailAddress) -> MailAddress? {
        guard from.address.utf8.contains(UInt8(ascii: "@")) && Text.length(from.address) <= IdentityValue.maximumLength else { return nil }
        var sender = from
        sender.address = IdentityValue.email(from.address)
        // Measured again in the stored form: an internationalized domain's A-labels are longer
        // (127 labels of 日本語 make 1,900 characters), and past the identity column's limit the
        // whole mail was refused. Such a From is no usable sender; the mail is kept all the same.
        guard Text.length(sender.address) <= IdentityValue.maximumLength else { return nil }
        return sender
    }

    /// A customer's mail or an auto-reply: filed under its sender, on a ticket its thread finds (a
    /// bounce or a report is filed under nobody and joins the ticket of the mail it reports on).
    static func isFiled(_ mail: ParsedMail) -> Bool {
        mail.classification == .customer || mail.classification == .autoReply
    }

    /// The sender whose identity a mail's transaction locks and reads, when the mail `isFiled`.
    func filedSender(of mail: ParsedMail) -> MailAddress? {
        Self.isFiled(mail) ? sender(of: mail) : nil
    }

    /// The sender's identity lock is already held (`lockKeys(of:providerID:)`, taken with the
    /// payload's insert or, reprocessing a stored payload, by `process`).
    private func takeCustomerMail(
        _ delivery: Delivery, senderOwner: IdentityStore.OwnersRead, senderUndeliverable: Bool, outcome: inout Outcome, on connection: PostgresConnection
    ) async throws {
        let mail = delivery.mail
        // An agent's forward is the customer's mail: filed under its original sender, whose
        // identity is locked and looked up now.
        let forwardedBy = try await ForwardingAgent.of(mail, ownAddress: automaticReply.ownAddress, on: connection, logger: logger)
        let relayed = forwardedBy == nil ? formRelay.relayed(mail) : nil
        if forwardedBy == nil, relayed == nil, isFromSupportAddress(mail) {
            try await takeOwnMail(delivery, outcome: &outcome, on: connection)
            return
        }
        let sender = forwardedBy?.original ?? self.sender(of: mail, relayed: relayed)
        var customerID: UUID?
        if let forwardedBy {
            try await identities.lock([(.email, forwardedBy.original.address)], on: connection)
            customerID = try await identities.owner(kind: .email, value: forwardedBy.original.address, on: connection)
        } else if let sender {
            customerID = try await identities.owner(kind: .email, value: sender.address, read: senderOwner, on: connection)
        }
        let threader = EmailThreader(logger: logger, subjectWindow: subjectWindow, ownAddress: automaticReply.ownAddress)
        var decision = try await threader.thread(mail, sender: sender, customerID: customerID, headerMatches: delivery.threadMatches, on: connection)
        let isAutoReply = mail.classification == .autoReply

        var ticket: ConversationIntake.Target?
        // An auto-reply is kept on its ticket but never reopens it nor moves its clocks.
        if case .existing(let ticketID, let reason) = decision,
           let locked = try await intake.lock(ticketID, customerWrites: !isAutoReply, on: connection) {
            if locked.status == .closed && !isAutoReply {
                if let followUp = try await intake.openFollowUp(of: locked.id, on: connection) {
                    ticket = followUp
                    outcome.threadingReason = "follow-up"
                } else {
                    decision = .new(relatedTo: locked.id, reason: "reopened-closed")
                }
            } else {
                ticket = locked
                outcome.threadingReason = reason
            }
        }
        if ticket == nil, isAutoReply {
            // An auto-reply that answers none of our tickets is noise: kept as the payload, nothing more.
            outcome.threadingReason = "no-ticket"
            return
        }

        if customerID == nil, let sender {
            // The sender's lock is held (see above) and the owner was looked up under it: none.
            customerID = try await resolver.create(
                kind: .email, value: sender.address, rawValue: forwardedBy?.forward.from.address ?? relayed?.written ?? mail.from?.address ?? sender.address, displayName: sender.name.map(Text.clean), on: connection)
        } else if customerID == nil {
            customerID = try await resolver.anonymousCustomer(on: connection)
        }
        guard let customerID else { throw Problem.internalError }

        var opened = false
        if ticket == nil, case .new(let related, let reason) = decision {
            ticket = try await intake.open(customerID: customerID, channel: .email, subject: Text.clean(forwardedBy?.subject ?? mail.subject ?? ""),
                                           body: Text.clean(forwardedBy?.forward.visibleText ?? mail.visibleText), relatedTo: related,
                                           recipients: (mail.to + mail.cc).map(\.address), on: connection)
            outcome.threadingReason = reason
            opened = true
        }
        guard let ticket else { throw Problem.internalError }

        let (messageID, now) = try await intake.record(
            try delivery.message(ticketID: ticket.id, customerID: customerID, threadingReason: outcome.threadingReason, forwardedBy: forwardedBy,
                                 relayed: relayed),
            on: ticket, customerID: customerID, eventDetails: ["classification": mail.classification.rawValue], on: connection)
        outcome.took(message: messageID, on: now, customerID: customerID)
        if let forwardedBy {
            // What the agent wrote above the forward is for colleagues, never shown to the customer;
            // no acknowledgement goes out: the customer wrote to the agent, who answers them.
            try await forwardedBy.addNote(on: now, on: connection, logger: logger)
            return
        }
        // Not for a From its domain disowns: one forged mail would otherwise lift the mark. Nor for a
        // form's: the customer typed their address, which says nothing of their mailbox taking mail.
        if senderUndeliverable, !isAutoReply, !AutomaticReply.failsDMARC(mail), forwardedBy == nil, relayed == nil, let sender {
            try await markDeliverableAgain(sender.address, customerID: customerID, on: connection)
        }
        if opened, let sender {
            try await AutomaticReply(logger: logger, settings: automaticReply).acknowledge(mail, sender: sender.address, ticket: now, on: connection)
        }
    }

    // MARK: - Mail from the support address itself

    /// From the support address (`MADOGUCHI_MAIL_FROM`, any `+tag` form), relaying no form's customer.
    private func isFromSupportAddress(_ mail: ParsedMail) -> Bool {
        guard let own = automaticReply.ownAddress, let from = mail.from?.address, !from.isEmpty else { return false }
        return AutomaticReply.baseAddress(from) == AutomaticReply.baseAddress(own)
    }

    /// Mail from the support address is no customer's: a colleague answering from a mail program
    /// with a copy to the desk, one of our own mails come back, a test. Filed under its From, the
    /// support address became a customer, each such mail a ticket in the queue (the colleague's
    /// answer shown as the customer's words), and an answer to it went to ourselves.
    /// It is kept on the ticket it names (its thread headers, or our `[#1234]` / `support+t1234@`)
    /// as a note by the desk, so that whoever answers sees what was sent; naming none, it is kept
    /// as the payload only. A note only on the receiving MTA's word that our domain sent it
    /// (`dmarc=pass`, or DKIM signed by it: `ForwardingAgent.isAuthenticated`), as an agent's forward
    /// is believed: anyone can write the support address in From and a ticket's number in the
    /// subject, and a note in the desk's name would be read as a colleague's. (It is no answer of
    /// ours on the clocks: what it says was sent cannot be checked.)
    private func takeOwnMail(_ delivery: Delivery, outcome: inout Outcome, on connection: PostgresConnection) async throws {
        let mail = delivery.mail
        outcome.threadingReason = "support-address"
        guard ForwardingAgent.isAuthenticated(mail, domain: FormRelay.domain(of: mail.from?.address ?? "")) else {
            logger.notice("a mail from the support address without the MTA's word that our domain sent it is kept, not filed",
                          metadata: ["message_id": "\(mail.messageID ?? "-")"])
            return
        }
        var named: UUID?
        for (id, _) in EmailThreader.headerCandidates(of: mail) where named == nil {
            named = delivery.threadMatches.first { $0.emailMessageID == id }?.ticketID
        }
        if named == nil {
            let threader = EmailThreader(logger: logger, subjectWindow: subjectWindow, ownAddress: automaticReply.ownAddress)
            named = try await threader.tokenTicket(of: mail, on: connection)?.id
        }
        guard let named, let ticket = try await intake.lock(named, customerWrites: false, on: connection) else { return }
        let to = (mail.to + mail.cc).map(\.address).joined(separator: ", ")
        var text = "Mail from the support address (\(mail.from?.address ?? "")) to \(to.isEmpty ? "-" : to), not sent through Madoguchi / "
            + "Madoguchi を通さずに送られたメール"
        if let subject = mail.subject, !subject.isEmpty { text += "\n件名: \(subject)" }
        text += "\n\n" + mail.visibleText
        // The note is the payload's message: the same mail coming again (through a second MX, with
        // other trace fields) finds it, and makes no second note.
        outcome.messageID = try await MessageStore(logger: logger).insertServiceNote(
            ticketID: ticket.id, customerID: ticket.customerID, channel: .email, agentID: AutomaticReply.agentID,
            body: Text.limit(Text.clean(text), 20_000), source: "support_address_mail", on: connection)
        outcome.ticketID = ticket.id
        outcome.customerID = ticket.customerID
        outcome.threadingReason = "support-address-note"
    }

    // MARK: - Bounces and reports

    /// A bounce never opens a ticket: it joins the ticket of the mail it reports on when that can be
    /// found, and a hard bounce marks the address undeliverable.
    private func takeReport(_ delivery: Delivery, outcome: inout Outcome, on connection: PostgresConnection) async throws {
        let mail = delivery.mail
        // Looked up and stored field by field: a NUL in one (PostgreSQL text cannot hold it) is dropped.
        let report = mail.deliveryReport.map(Text.clean)
        let recipients = report?.recipients ?? []
        if !recipients.isEmpty {
            outcome.bouncedRecipients = recipients.map {
                .init(address: $0.address, action: $0.action, status: $0.status, reason: $0.reason, hard: mail.classification == .bounce && $0.isHardBounce)
            }
        }
        var target: (ticket: UUID, customer: UUID, reason: String)?
        if let original = report?.originalMessageID {
            for row in try await connection.rows("""
                SELECT t.id, t.customer_id FROM messages m JOIN tickets t ON t.id = m.ticket_id
                WHERE m.email_message_id = \(original) ORDER BY m.created_at LIMIT 1
                """, preparedAs: ReportedMail.self, logger: logger) {
                let (ticketID, customerID) = try row.decode((UUID, UUID).self)
                target = (ticketID, customerID, "bounce-message-id")
            }
        }
        // Without our Message-ID, by the address it names: the customer's latest ticket we wrote on
        // (one we never wrote on cannot have had our mail bounce; a stranger's report naming any
        // address is not filed among a customer's messages).
        for address in Self.storedForms(recipients.flatMap(\.addresses)) where target == nil {
            for row in try await connection.rows("""
                SELECT t.id, t.customer_id FROM customer_identities i JOIN tickets t ON t.customer_id = i.customer_id
                WHERE i.kind = 'email' AND i.value = \(address)
                  AND EXISTS (SELECT 1 FROM messages o WHERE o.ticket_id = t.id AND o.direction = 'outbound')
                ORDER BY t.updated_at DESC
                LIMIT 1
                """, preparedAs: ReportedRecipient.self, logger: logger) {
                let (ticketID, customerID) = try row.decode((UUID, UUID).self)
                target = (ticketID, customerID, "bounce-recipient")
            }
        }
        let desk = DeliveryDesk(database: database, logger: logger)
        if mail.classification == .bounce {
            let hardBounces = recipients.filter(\.isHardBounce)
            // The addresses as stored, when our mail went out in another spelling of them (`IDNA`: an
            // A-label, or full-width letters typed into a form sent as ASCII); read once for all.
            var sentTo: [String] = []
            var namesOurMail = false
            if !hardBounces.isEmpty {
                if let original = report?.originalMessageID {
                    sentTo = try await desk.storedRecipients(sentAs: original, on: connection)
                        + mailedAddresses(messageID: original, on: connection)
                    namesOurMail = !sentTo.isEmpty
                }
                if !namesOurMail {
                    sentTo = try await recentlyMailed(hardBounces.flatMap(\.addresses), on: connection)
                }
            }
            // Only a report on mail we sent to an address marks that address: anyone can send a report
            // naming any address, and a forged one would otherwise cut a customer off from every reply.
            // A report naming our mail must name an address that mail went to. One naming no mail of
            // ours (carriers' notices, KDDI's among them, quote no headers; a relay such as SES gives
            // the mail a Message-ID of its own) an address we mailed in the last two weeks. A report
            // on an address we did not write to (a stranger's forgery, backscatter from spam forging
            // our address) is filed and shown, nothing more.
            for recipient in hardBounces {
                let stored = sentTo.filter { sent in recipient.addresses.contains { DeliveryDesk.sameMailbox(sent, $0) } }
                guard !stored.isEmpty else {
                    logger.notice("a hard bounce names no mail we sent to its address; the address is not marked",
                                  metadata: ["recipient": "\(recipient.address)", "original_message_id": "\(report?.originalMessageID ?? "-")"])
                    continue
                }
                try await markUndeliverable(recipient, alsoAs: stored, on: connection)
            }
            // Any recipient the report says failed (RFC 3464 §2.3.3: it could not be delivered, and the
            // relay has stopped trying) bounces our reply: a full mailbox or a carrier's filter keeps
            // the answer from the customer as surely as a gone address, and someone must answer
            // another way. Only a hard bounce marks the address itself (above).
            let failed = recipients.filter { $0.action == "failed" }
            if !failed.isEmpty, let original = report?.originalMessageID {
                try await desk.recordBounce(originalMessageID: original, failures: failed, on: connection)
            }
        }
        // A delay notice (the relay is still trying) is recorded on the reply it concerns, nothing more.
        let delayed = recipients.filter { $0.action == "delayed" }
        if !delayed.isEmpty, let original = report?.originalMessageID {
            try await desk.recordDelay(originalMessageID: original, recipients: delayed, on: connection)
        }
        guard let target else {
            outcome.threadingReason = "no-ticket"
            return
        }
        // A report joins its ticket without reopening it: it is about our mail, not the customer writing.
        // It does take the ticket's row lock, as every writer of a timeline does, so that a reply sent
        // meanwhile either sees it or is told of it by the traffic cop.
        // The customer is read again under that lock: a merge committed since the lookup above moved
        // the ticket to the survivor, and the report is filed there, not under the merged-away customer.
        // A ticket merged since the mail went out has handed on to the one it went into: the report
        // is filed there, where someone now answers.
        let locked = try await intake.lock(target.ticket, customerWrites: false, on: connection)
        let customerID = locked?.customerID ?? target.customer
        let ticketID = locked?.id ?? target.ticket
        let ticket = ConversationIntake.Target(id: ticketID, number: 0, customerID: customerID, status: .new)
        let (messageID, _) = try await intake.record(
            try delivery.message(ticketID: ticketID, customerID: customerID, threadingReason: target.reason, forwardedBy: nil), on: ticket,
            customerID: customerID, eventDetails: ["classification": mail.classification.rawValue], on: connection)
        outcome.messageID = messageID
        outcome.ticketID = ticketID
        outcome.customerID = customerID
        outcome.threadingReason = target.reason
    }

    /// Where a report belongs: by the Message-ID it names, else by its recipient (bounces are many
    /// among what a shop's address receives, so these are prepared like the rest of ingest).
    private enum ReportedMail: PreparedSite { static let name = "madoguchi_report_by_message_id" }
    private enum ReportedRecipient: PreparedSite { static let name = "madoguchi_report_by_recipient" }

    /// The customer wrote from an address a bounce marked undeliverable: the mailbox takes mail again
    /// (a carrier's reception filter (指定受信) set right, a full mailbox emptied, a bounce that was
    /// wrong), so replies go there again without a confirmation. Another bounce marks it again.
    private func markDeliverableAgain(_ address: String, customerID: UUID, on connection: PostgresConnection) async throws {
        try await identities.markDeliverable(kind: .email, value: address, on: connection)
        try await events.record(.identityDeliverable, customerID: customerID, actor: nil,
                                data: ["kind": "email", "value": address, "source": "customer_mail"], on: connection)
    }

    /// Each address as written, then in the form identities are stored in (`Taro@日本語.jp` is
    /// `taro@xn--wgv71a119e.jp`), without repeats.
    static func storedForms(_ addresses: [String]) -> [String] {
        var seen = Set<String>()
        return addresses.flatMap { [$0, IdentityValue.comparable($0)] }.filter { seen.insert($0).inserted }
    }

    /// The addresses our outbound mail `messageID` went to, as its message keeps them.
    private func mailedAddresses(messageID: String, on connection: PostgresConnection) async throws -> [String] {
        var addresses: [String] = []
        let rows = try await connection.run("""
            SELECT unnest(to_addresses) FROM messages WHERE email_message_id = \(messageID) AND direction = 'outbound'
            """, logger: logger)
        for try await address in rows.decode(String.self) { addresses.append(address) }
        return addresses
    }

    /// Of `addresses`, those a mail of ours went to in the last two weeks (a relay gives up after
    /// five days at most), as the messages keep them: found through the customers they identify,
    /// whose tickets' messages are indexed, never by scanning every outbound mail.
    private func recentlyMailed(_ addresses: [String], on connection: PostgresConnection) async throws -> [String] {
        let spellings = Self.storedForms(addresses)
        var mailed: [String] = []
        let rows = try await connection.run("""
            SELECT DISTINCT sent.address
            FROM customer_identities i
            JOIN tickets t ON t.customer_id = i.customer_id
            JOIN messages m ON m.ticket_id = t.id AND m.direction = 'outbound' AND m.channel = 'email'
                           AND m.created_at > now() - interval '14 days'
            CROSS JOIN LATERAL unnest(m.to_addresses) AS sent(address)
            WHERE i.kind = 'email' AND i.value = ANY(\(spellings))
            """, logger: logger)
        for try await address in rows.decode(String.self) { mailed.append(address) }
        return mailed
    }

    private func markUndeliverable(_ recipient: DeliveryReport.Recipient, alsoAs stored: [String], on connection: PostgresConnection) async throws {
        let reason = Text.limit([recipient.reason, recipient.status, recipient.diagnostic].compactMap { $0 }.joined(separator: " — "), 2000)
        // Only the addresses our mail went to, as we stored them (`stored`). A report names more
        // (Original- and Final-Recipient: a forward's dead end, unknown to us); one that paired an
        // address we mailed with another customer's as Final-Recipient cut that customer off.
        // Once each: `stored` holds the reply's recipients and its message's, the same addresses twice.
        var marked = Set<String>()
        for address in stored where marked.insert(address.lowercased()).inserted {
            for customerID in try await identities.markUndeliverable(kind: .email, value: address, reason: reason, on: connection) {
                try await events.record(.identityUndeliverable, customerID: customerID, actor: nil,
                                        data: ["kind": "email", "value": address, "reason": reason, "source": "bounce"], on: connection)
            }
        }
    }
}
