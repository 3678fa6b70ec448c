import Foundation

/// What kind of mail this is, decided before it goes near a ticket: a bounce must never open one, and
/// an auto-reply must never count as the customer's answer or trigger one of ours.
public enum MailClassification: String, Sendable {
    case customer, autoReply = "auto_reply", bounce, feedbackReport = "feedback_report", deliveryReport = "delivery_report"
}

/// The per-recipient outcome of a delivery report (RFC 3464) or a non-standard bounce read from text.
public struct DeliveryReport: Sendable, Equatable {
    public struct Recipient: Sendable, Equatable {
        public var address: String
        /// `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
        public var action: String
        /// The enhanced status code (RFC 3463), e.g. `5.1.1`.
        public var status: String?
        /// Why, in a stable word: `userunknown`, `mailboxfull`, `hostunknown`, … (Sisimai's vocabulary).
        public var reason: String
        public var diagnostic: String?
        /// The report's Original-Recipient when it differs from `address`: the address as we sent to
        /// it (RFC 3464 §2.3.1), where `address` (the Final-Recipient) is where a forward led.
        public var originalRecipient: String? = nil

        /// The addresses this failure may be known to us by: ours first, then the final one.
        public var addresses: [String] { (originalRecipient.map { [$0] } ?? []) + [address] }

        /// A permanent failure of the mailbox itself: the address should not be written to again as
        /// it is. Only reasons that say the mailbox or its domain is gone count (Sisimai's hard
        /// bounces); a full mailbox, a filter, a policy or a suspended account may pass, and a 4xx
        /// never is one.
        public var isHardBounce: Bool {
            action == "failed" && status?.hasPrefix("4") != true && Self.hardReasons.contains(reason)
        }
        static let hardReasons: Set = ["userunknown", "hostunknown", "hasmoved", "notaccept", "suppressed"]
    }

    public var recipients: [Recipient]
    /// The Message-ID of the mail that bounced, when the report carries its headers.
    public var originalMessageID: String?
}

enum MailClassifier {
    static func classify(_ mail: ParsedMail) -> (MailClassification, DeliveryReport?) {
        let reportType = mail.root.contentType["report-type"]?.lowercased()
        let parts = leaves(mail.root)
        if reportType == "feedback-report" || parts.contains(where: { $0.mediaType == "message/feedback-report" }) || FeedbackLoop.isReport(mail, parts: parts) {
            // No recipient failed; the complained-of mail (RFC 5965 §2, its third part) says which
            // of ours it was, so the complaint joins that ticket.
            let original = messageID(of: originalHeaders(parts))
            return (.feedbackReport, original.map { DeliveryReport(recipients: [], originalMessageID: $0) })
        }
        if let notification = ESPNotification.read(mail) { return notification }
        let original = originalHeaders(parts)
        // A person forwarding a bounce to us is asking for help (Thunderbird's forward keeps the
        // report's delivery-status part): read as a bounce, their question made no message at all.
        // A report itself (multipart/report) or a mail system's mail still is one.
        let forwardedByPerson = reportType == nil && !BounceSignatures.isSystemSender(mail) && BounceSignatures.isForwardOrReply(mail.subject ?? "")
        if !forwardedByPerson,
           let status = parts.first(where: { $0.mediaType == "message/delivery-status" || $0.mediaType == "message/global-delivery-status" }) {
            var recipients = DeliveryStatus.recipients(in: status, fallbackText: mail.text,
                                                       excluding: BounceText.excludedAddresses(of: mail, original: original))
            if recipients.isEmpty { recipients = BounceText.recipients(in: mail, original: original) }
            return classified(DeliveryReport(recipients: recipients, originalMessageID: messageID(of: original)))
        }
        if reportType == "disposition-notification" { return (.deliveryReport, nil) }
        if BounceText.looksLikeBounce(mail) {
            // Bounces without MIME copy the original into their text; its Message-ID still says which mail it was.
            let original = original ?? FailedRecipients.inlineOriginalHeaders(in: mail.text)
            return classified(DeliveryReport(recipients: BounceText.recipients(in: mail, original: original), originalMessageID: messageID(of: original)))
        }
        if isAutoReply(mail) { return (.autoReply, nil) }
        return (.customer, nil)
    }

    /// A report whose recipients were all delivered, relayed, or only delayed (the MTA is still
    /// trying) is a delivery report: nothing failed yet. Otherwise it is a bounce.
    private static func classified(_ report: DeliveryReport) -> (MailClassification, DeliveryReport) {
        let nothingFailed = !report.recipients.isEmpty
            && report.recipients.allSatisfy { ["delivered", "relayed", "expanded", "delayed"].contains($0.action) }
        return (nothingFailed ? .deliveryReport : .bounce, report)
    }

    private static func messageID(of original: HeaderSection?) -> String? {
        original?.field("Message-ID").flatMap { MessageIDs.parse($0.rawValue).first }
    }

    /// RFC 3834 and the headers and subjects vacation responders really use.
    static func isAutoReply(_ mail: ParsedMail) -> Bool {
        let headers = mail.root.headers
        if let auto = mail.autoSubmitted?.lowercased(), !auto.hasPrefix("no") { return true }
        if headers.field("X-Autoreply") != nil || headers.field("X-Autorespond") != nil || headers.field("X-Auto-Reply") != nil { return true }
        if let precedence = mail.precedence?.lowercased(), precedence.contains("auto_reply") || precedence.contains("auto-reply") { return true }
        if headers["X-Auto-Response"] != nil { return true }
        // Customers begin subjects with these words too (「自動返信メールが届きません」「不在票が入っていました」,
        // "Vacation rental question"), and an auto-reply that answers none of our tickets is dropped.
        // Without a header, a word counts only as a responder writes it: as a label ("不在:", "【自動返信】",
        // "Automatic reply: …"), or at the start of a mail that answers another.
        let subject = (mail.subject ?? "").lowercased()
        if subject.containsAnyUTF8(autoReplySubjectLabels) { return true }
        let answersAMail = !mail.inReplyTo.isEmpty || !mail.references.isEmpty
        return answersAMail && autoReplySubjects.contains { subject.hasPrefix($0) }
    }

    /// Each of `autoReplySubjects` as a label anywhere in a subject: before a colon, or alone in a
    /// bracket ("[auto-reply]", "【自動返信】", "（不在）"). The bracket must close right after the
    /// word: 「【不在票】再配達をお願いします」 and 「再配達希望（不在票あり）」 are customers writing.
    static let autoReplySubjectLabels: [String] = autoReplySubjects.flatMap { (word: String) -> [String] in
        if word.hasSuffix(":") { return [word] }
        let after = [":", "："].map { word + $0 }
        let enclosed = [("[", "]"), ("【", "】"), ("(", ")"), ("（", "）"), ("〔", "〕"), ("《", "》"), ("<", ">")].map { $0.0 + word + $0.1 }
        return after + enclosed
    }

    static let autoReplySubjects = [
        "auto:", "automatic reply", "autoreply", "auto-reply", "auto reply", "out of office", "out of the office", "vacation",
        "自動返信", "自動応答", "自動送信", "不在", "autosvar", "abwesenheitsnotiz", "automatische antwort", "réponse automatique",
        "automatyczna odpowiedź", "respuesta automática", "risposta automatica", "מענה 'אני לא נמצא'", "resposta automática",
        "automatisch antwoord", "afwezig", "autoresponder", "автоответ", "автоматический ответ",
    ]

    /// Every leaf and message part, depth first.
    static func leaves(_ part: MIMEPart) -> [MIMEPart] {
        switch part.content {
        case .leaf: return [part]
        case .multipart(let children): return children.flatMap(leaves)
        case .message: return [part]
        }
    }

    /// The headers of the mail that bounced (`message/rfc822` or `text/rfc822-headers` in the report).
    static func originalHeaders(_ parts: [MIMEPart]) -> HeaderSection? {
        for part in parts {
            if case .message(let inner) = part.content { return inner.headers }
            if part.mediaType == "text/rfc822-headers" {
                var defects: [String] = []
                return HeaderSection.split(ArraySlice(part.decodedBody), defects: &defects).0
            }
        }
        return nil
    }
}

/// `message/delivery-status` (RFC 3464 §2): a per-message block, then one block per recipient.
enum DeliveryStatus {
    static func recipients(in part: MIMEPart, fallbackText: String, excluding excluded: Set<String> = []) -> [DeliveryReport.Recipient] {
        // Read from the text only if a block needs it, and only once.
        var textMailbox: String??
        func mailboxInText() -> String? {
            if let known = textMailbox { return known }
            let scan = FailedRecipients(errorText: String(FailedRecipients.errorPart(of: fallbackText)), excluding: excluded)
            let found = scan.entries.first { !FailedRecipients.isContactMailbox($0.address) }?.address
            textMailbox = .some(found)
            return found
        }
        var bytes = ArraySlice(part.decodedBody)
        if case .message(let inner) = part.content { bytes = inner.sourceBytes }
        var recipients: [DeliveryReport.Recipient] = []
        var seen: Set<String> = []
        var defects: [String] = []
        var blocks = 0
        while !bytes.isEmpty, blocks < 500 {
            blocks += 1
            let (block, rest) = HeaderSection.split(bytes, defects: &defects)
            defer { bytes = rest }
            if block.fields.isEmpty {
                // A stray blank line between blocks.
                guard let next = rest.firstIndex(where: { $0 != 0x0A && $0 != 0x0D }) else { break }
                bytes = rest[next...]
                continue
            }
            // A Final-Recipient that is a source route or a bare "@host" names no mailbox: the
            // Original-Recipient, or the text, says who it was.
            let candidates = [block["Final-Recipient"], block["Original-Recipient"]].compactMap { field in
                field.map { $0.split(separator: ";", maxSplits: 1).last.map { $0.trimmingWhitespace() } ?? $0 }
            }
            guard !candidates.isEmpty else { continue }
            guard let named = candidates.first(where: Self.isMailbox) ?? mailboxInText() else { continue }
            let address = MailAddress.normalize(named.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")))
            guard seen.insert(address.lowercased()).inserted else { continue }
            let status = BounceText.refine(block["Status"].flatMap(BounceText.statusCode), by: block["Diagnostic-Code"])
            var action = block["Action"]?.lowercased().trimmingWhitespace() ?? ""
            if action.isEmpty { action = status?.hasPrefix("2") == true ? "delivered" : status?.hasPrefix("4") == true ? "delayed" : "failed" }
            let diagnostic = block["Diagnostic-Code"].map { $0.split(separator: ";", maxSplits: 1).last.map(String.init) ?? $0 }?
                .trimmingWhitespace()
            let reason = action == "delivered" || action == "relayed" || action == "expanded"
                ? "delivered"
                : BounceText.reason(status: status, diagnostic: diagnostic, text: fallbackText)
            var recipient = DeliveryReport.Recipient(address: address, action: action, status: status, reason: reason, diagnostic: diagnostic)
            if let original = block["Original-Recipient"].flatMap({ $0.split(separator: ";", maxSplits: 1).last.map { $0.trimmingWhitespace() } }),
               Self.isMailbox(original) {
                let normalized = MailAddress.normalize(original.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")))
                if normalized.lowercased() != address.lowercased() { recipient.originalRecipient = normalized }
            }
            recipients.append(recipient)
        }
        return recipients
    }

    static func isMailbox(_ value: String) -> Bool {
        let address = value.trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
        guard let at = address.lastIndex(of: "@"), at > address.startIndex else { return false }
        return !address.hasPrefix("@") && !address[..<at].contains(":")
    }

}
