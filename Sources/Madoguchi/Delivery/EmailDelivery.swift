import Foundation
import Logging
import MadoguchiMail
import NIOCore
import PostgresNIO

/// Replies by mail: composed once (carrier-safe charset, threading headers, attachments, DKIM),
/// then handed to the relay over a pooled connection. The relay's reply decides each recipient:
/// 250 sent, 4xx later, 5xx never (and the address is marked undeliverable).
struct EmailDelivery: Sendable {
    let database: Database
    let logger: Logger
    let settings: DeliverySettings
    let from: MailAddress
    let pool: SMTPPool
    let dkim: DKIMSigner?

    struct LeaseLost: Error {}

    /// `composed` is this row's mail from `compose(_:)` (nil when an earlier attempt composed it);
    /// `handover` commits the point of no return, with the mail when this attempt composed it.
    func deliver(_ item: OutboxItem, composed: Result<[UInt8], any Error>?,
                 handover: @escaping @Sendable (_ composed: [UInt8]?) async throws -> Void) async -> DeliveryAttempt {
        let message: [UInt8]
        switch (item.message, composed) {
        case (let kept?, _):
            message = kept
        case (nil, .success(let bytes)?):
            message = bytes
        case (nil, .failure(let failure as MailComposer.Failure)?):
            return .refused(item, "the reply cannot be written as a mail: \(failure)")
        case (nil, .failure(let error)?):
            return .deferred(item, "composing the mail failed: \(error)")
        case (nil, nil):
            return .deferred(item, "the mail was not composed")
        }
        let composedNow = item.message == nil
        // Domains as A-labels (`IDNA`), as the composer writes them in the headers. Two stored spellings
        // of one mailbox (`日本語.jp` and `xn--wgv71a119e.jp`) are one recipient, answered for both.
        var stored: [String: [String]] = [:]
        var recipients: [String] = []
        for recipient in item.pendingRecipients {
            let ascii = IDNA.asciiAddress(recipient)
            if stored[ascii] == nil { recipients.append(ascii) }
            stored[ascii, default: []].append(recipient)
        }
        let sender = IDNA.asciiAddress(from.address)
        // Judged on the mail as written, not only on the recipients still pending: its header lists
        // them all, and a raw UTF-8 address there (the composer encodes everything else) needs
        // SMTPUTF8 on a retry to the others too, and in a mail stored before the composer wrote
        // A-labels.
        let envelope = SMTPSession.Envelope(
            from: sender, recipients: recipients,
            needsSMTPUTF8: !sender.allSatisfy(\.isASCII) || recipients.contains { !$0.allSatisfy(\.isASCII) } || Self.headerIsNotASCII(message))
        do {
            let outcome = try await pool.withSession { session in
                try await session.send(message, envelope: envelope) { try await handover(composedNow ? message : nil) }
            }
            // The relay answered for the addresses as sent; the row knows them as stored. A recipient
            // left unanswered would stay pending, and be sent the mail again on the next attempt.
            return Self.attempt(from: outcome, storedAs: { stored[$0] ?? [$0] })
        } catch is LeaseLost {
            return DeliveryAttempt(kind: .abandoned)
        } catch let error as SMTPSession.AfterFinalDot {
            // The recipients refused before the dot are settled (a 5.1.1 marks its address); the
            // ones accepted wait for a person's decision.
            let refusals = Self.attempt(from: SMTPSession.Outcome(accepted: [], refused: error.refused, finalReply: nil, refusedData: nil),
                                        storedAs: { stored[$0] ?? [$0] })
            return .uncertain("\(error); held rather than risk a second copy", settled: refusals.recipients.filter { $0.value.status == .failed })
        } catch let error as SMTPError {
            return error.isTransient ? .deferred(item, error.description) : .refused(item, error.description)
        } catch {
            return .deferred(item, String(describing: error))
        }
    }

    /// Whether the mail's header section holds a byte that is not ASCII.
    static func headerIsNotASCII(_ message: [UInt8]) -> Bool {
        var previous: (UInt8, UInt8, UInt8) = (0, 0, 0)
        for byte in message {
            if byte >= 0x80 { return true }
            // The blank line after the header: CR LF CR LF.
            if byte == 0x0A, previous == (0x0D, 0x0A, 0x0D) { return false }
            previous = (previous.1, previous.2, byte)
        }
        return false
    }

    /// What the relay's replies mean for each recipient.
    static func attempt(from outcome: SMTPSession.Outcome, storedAs stored: (String) -> [String] = { [$0] }) -> DeliveryAttempt {
        var outcome = outcome
        outcome.accepted = outcome.accepted.flatMap(stored)
        outcome.refused = outcome.refused.flatMap { refused in stored(refused.recipient).map { ($0, refused.reply) } }
        var results: [String: RecipientResult] = [:]
        for (recipient, reply) in outcome.refused {
            // 552 to RCPT is "too many recipients" or a full mailbox, which RFC 5321 (§4.5.3.1.10)
            // says to treat as temporary; a refusal of our relaying waits for the fix. One for the
            // message's sake fails the mail without marking an address that may be fine.
            results[recipient] = !reply.isPermanent || reply.code == 552 || reply.refusesOurSending ? .pending("RCPT TO: \(reply)")
                : .failed("RCPT TO: \(reply)", undeliverable: reply.refusesTheAddress)
        }
        if let refused = outcome.refusedData {
            // Before, the DATA refusal was thrown and failed every pending recipient for good, a 4xx
            // to RCPT and a 5xx's undeliverable mark included.
            for recipient in outcome.accepted {
                results[recipient] = refused.isPermanent ? .failed("DATA: \(refused)") : .pending("DATA: \(refused)")
            }
            return .answered(results, error: "DATA: \(refused)")
        }
        guard let final = outcome.finalReply else {
            return .answered(results, error: outcome.refused.first.map { "RCPT TO: \($0.reply)" })
        }
        // Any 2xx after the dot is the relay taking the mail (250 as a rule); a 4xx or 5xx is not. Any
        // other answer (a stray 354 from a broken proxy) does not say which: the mail may have been
        // taken, so it is held for a person rather than sent again.
        let taken = final.code / 100 == 2
        guard taken || final.isTransient || final.isPermanent else {
            return .uncertain("the relay answered the end of DATA with \(final); held rather than risk a second copy", settled: results)
        }
        for recipient in outcome.accepted {
            results[recipient] = taken ? .sent(final.description)
                : final.isPermanent && !final.refusesOurSending ? .failed("end of DATA: \(final)") : .pending("end of DATA: \(final)")
        }
        return .answered(results, response: taken ? final.description : nil, error: taken ? nil : "end of DATA: \(final)")
    }

    // MARK: - Composing

    /// The mails of the rows that have none yet, composed now from what their claim read
    /// (`OutboxItem.source`); only a reply with files reads more, its files.
    func compose(_ items: [OutboxItem]) async -> [UUID: Result<[UInt8], any Error>] {
        var mails: [UUID: Result<[UInt8], any Error>] = [:]
        for item in items where item.message == nil && (item.channel == .email || item.channel == .webform) {
            do {
                guard let source = item.source else { throw RowNotFound("the reply of outbox row \(item.id)") }
                let files = source.hasAttachments ? try await attachments(of: item.replyID) : []
                var bytes = try compose(item, from: source, attachments: files).bytes
                if let dkim { bytes = try dkim.sign(bytes) }
                mails[item.id] = .success(bytes)
            } catch {
                mails[item.id] = .failure(error)
            }
        }
        return mails
    }

    private func compose(_ item: OutboxItem, from source: ReplySource, attachments: [OutgoingMail.Attachment]) throws -> ComposedMail {
        // A customer's mailer may write ids we cannot repeat in a header; threading does without them.
        let parent = source.parentID.flatMap { id in
            MailComposer.isWritableMessageID(id) ? (id, (source.parentReferences ?? []).filter(MailComposer.isWritableMessageID)) : nil
        }
        let number = source.ticketNumber
        let mail = OutgoingMail(
            // Every recipient is one of the customer's own addresses (a send guard, unknown-recipient).
            // One line: names stored before ingest made them so, or set by hand, may hold a break.
            from: from, to: item.recipients.map { MailAddress(name: source.customerName.flatMap(MailAddress.oneLineName), address: $0) },
            replyTo: Self.ticketAddress(from, number: number),
            // The ticket's token whatever the subject (a reply drafted before drafts kept it, an
            // automatic one from a template): `ReplyDesk.keepingTicketToken`.
            subject: ReplyDesk.keepingTicketToken(source.subject ?? "", number: number, channel: .email), messageID: item.emailMessageID, inReplyTo: parent?.0,
            references: parent.map { Self.references($0.1 + [$0.0]) } ?? [], date: Date(), text: source.body,
            attachments: attachments,
            // RFC 3834: automatic mail says so, and other systems' auto-responders stay quiet.
            autoSubmitted: source.automatic ? "auto-replied" : nil,
            extraHeaders: [("X-Madoguchi-Ticket", String(number))] + (source.automatic ? [("X-Auto-Response-Suppress", "All")] : []))
        return try MailComposer.compose(mail, carrierDomains: settings.carrierDomains)
    }

    private func attachments(of replyID: UUID) async throws -> [OutgoingMail.Attachment] {
        try await database.withConnection { connection in
            try await ReplyStore(logger: logger).attachmentContents(of: replyID, on: connection).map {
                OutgoingMail.Attachment(filename: $0.filename, mediaType: $0.mediaType, content: $0.content)
            }
        }
    }

    /// At most 20 ids: the thread's first and its latest 19 (RFC 5322 §3.6.4's practice). Mailers
    /// thread by the root; keeping only the latest 20 dropped it from long threads.
    static func references(_ ids: [String]) -> [String] {
        ids.count <= 20 ? ids : [ids[0]] + ids.suffix(19)
    }

    /// `support+t1234@shop.example`: the customer's answer to it threads to the ticket by its token.
    static func ticketAddress(_ from: MailAddress, number: Int64) -> MailAddress {
        guard let at = from.address.lastIndex(of: "@") else { return from }
        return MailAddress(name: from.name, address: "\(from.address[..<at])+t\(number)\(from.address[at...])")
    }
}
