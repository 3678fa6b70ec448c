import Foundation

/// Bounces that are not RFC 3464 reports: qmail, old Sendmail and Exim, Exchange, and the Japanese
/// carriers and ISPs, which say it in prose. Read from the sender, the subject and the text.
enum BounceText {
    static let subjects = [
        "undeliver", "undelivered mail", "returned mail", "delivery status notification", "delivery failure", "delivery failed",
        "mail delivery failed", "failure notice", "non-delivery", "nondeliverable", "delivery has failed", "could not be delivered",
        "mail system error", "delivery notification", "message not delivered", "undeliverable", "rejected", "returned to sender",
        "warning: could not send", "permanent error", "配信不能", "配送エラー", "送信エラー", "メール配信エラー", "届きませんでした", "エラーメール",
        "配信できません", "配信に失敗", "mail could not", "delivery problem", "delivery status", "unable to deliver", "nicht zustellbar",
        "mail failure", "delivery failure", "failure",
    ]

    static func looksLikeBounce(_ mail: ParsedMail) -> Bool {
        let subject = mail.subject ?? ""
        let fromSystem = BounceSignatures.isSystemSender(mail)
        // A customer forwarding a bounce to us is asking for help, whatever the bounce inside says.
        if !fromSystem, BounceSignatures.isForwardOrReply(subject) { return false }
        if BounceSignatures.hasReportHeader(mail) { return true }
        // Sent by software rather than typed by a person: a mail system's sender, the null envelope
        // sender bounces travel with, or Auto-Submitted. A person pasting a bounce has none of these.
        let machineSent = fromSystem || BounceSignatures.hasNullEnvelopeSender(mail) || BounceSignatures.isAutoSubmitted(mail)
        if machineSent, BounceSignatures.hasTemplateSentence(mail.text) { return true }
        let lowerSubject = subject.lowercased()
        let bounceSubject = lowerSubject.containsAnyUTF8(subjects) || BounceSignatures.subjectLooksLikeBounce(subject)
        // The status code search reads the whole text: only for a system sender's mail.
        if fromSystem && (bounceSubject || mail.subject == nil || statusCode(in: mail.text) != nil) { return true }
        // The detection scan excludes the sender's own address (a signature) and ours.
        let namesFailedRecipient = {
            let excluded = excludedAddresses(of: mail, original: nil)
            return !FailedRecipients(errorText: String(FailedRecipients.errorPart(of: mail.text)), excluding: excluded).entries
                .filter { !FailedRecipients.isContactMailbox($0.address) }.isEmpty
        }
        if bounceSubject {
            // A customer writing "undelivered parcel" is not a bounce: mail-system prose, and a sign
            // that software sent it (or a copy of the original attached), are both needed.
            let text = mail.text.lowercased()
            let systemProse = ["user unknown", "unknown user", "no such user", "delivery to the following recipient", "permanent error",
                               "the following address", "mailbox unavailable", "recipient address rejected", "host unknown",
                               "mailbox is full", "failed recipient", "the error that the other server returned"].contains { text.containsUTF8($0) }
                || hasFailureCode(text)
            let originalAttached = MailClassifier.originalHeaders(MailClassifier.leaves(mail.root)) != nil
            return systemProse && (machineSent || originalAttached) || machineSent && hasSMTPReply(mail.text) && namesFailedRecipient()
        }
        return fromSystem && namesFailedRecipient()
    }

    /// An SMTP failure reply or a mailbox-unknown status as a word of its own: `550 `, `554-`, `5.1.1`,
    /// not inside a date or a number ("2025.1.15に注文", "A-5500").
    static func hasFailureCode(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        func isDigitOrDot(_ index: Int) -> Bool {
            index >= 0 && index < bytes.count && (bytes[index] == UInt8(ascii: ".") || (0x30...0x39).contains(bytes[index]))
        }
        for code in ["550", "554", "5.1.1"] {
            let needle = Array(code.utf8)
            var index = 0
            while let found = bytes[index...].firstRange(of: needle) {
                index = found.lowerBound + 1
                let before = found.lowerBound - 1
                guard before < 0 || !(isDigitOrDot(before) || bytes[before] == UInt8(ascii: "-")) else { continue }
                let after = found.upperBound
                if code.contains(".") {
                    if !isDigitOrDot(after) { return true }
                } else if after < bytes.count, bytes[after] == UInt8(ascii: " ") || bytes[after] == UInt8(ascii: "-") {
                    return true
                }
            }
        }
        return false
    }

    /// Every failed recipient the report names, each with its own status and reason. Exim's
    /// `X-Failed-Recipients` header is authoritative when present; otherwise the recipient lines of
    /// the report's own text (see `FailedRecipients`); only when neither names anyone, the first
    /// address of the prose, then the bounced mail's To.
    static func recipients(in mail: ParsedMail, original: HeaderSection?) -> [DeliveryReport.Recipient] {
        let original = original ?? FailedRecipients.inlineOriginalHeaders(in: mail.text)
        let excluded = excludedAddresses(of: mail, original: original)
        let errorText = String(FailedRecipients.errorPart(of: mail.text))
        let scan = FailedRecipients(errorText: errorText, excluding: excluded)
        let shared = scan.preamble.joined(separator: "\n")
        var named = scan.entries
        // Exim lists them in a header too; taken when the text puts none in a recipient's place
        // (an alias "save to …", a pipe), and for Google Groups, which names them nowhere else.
        if named.isEmpty, let header = mail.root.headers["X-Failed-Recipients"] {
            named = header.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
                .map { MailAddress.normalize($0.trimmingCharacters(in: CharacterSet(charactersIn: "<> \t"))) }
                .filter { $0.contains("@") && !FailedRecipients.isExcluded($0, excluded) }
                .map { .init(address: $0, lines: []) }
        }
        if !named.isEmpty {
            // Each recipient's reason comes from its own lines, then from the text they share, never
            // from another recipient's lines.
            let report = ReportWording(errorText)
            let sharedStatus = mostSpecificStatus(in: shared)
            return named.prefix(FailedRecipients.entryLimit).map { entry in
                recipient(entry.address, ownText: entry.lines.joined(separator: "\n"), sharedText: shared, sharedStatus: sharedStatus, report: report)
            }
        }
        // Nothing in a recipient's place: the first address of the prose that is not a contact
        // mailbox, else the bounced mail's To.
        var fallback = FailedRecipients.proseAddresses(in: errorText).first {
            !FailedRecipients.isExcluded($0, excluded) && !FailedRecipients.isContactMailbox($0) && !$0.contains("=")
        }
        if fallback == nil, let to = original?.field("To") {
            fallback = MailAddress.list(to.rawValue).map(\.address).first { !FailedRecipients.isExcluded($0, excluded) }
        }
        return fallback.map { [recipient($0, ownText: "", sharedText: errorText, sharedStatus: mostSpecificStatus(in: errorText), report: ReportWording(errorText))] } ?? []
    }

    /// The report's sender and addressee (the reporter and us), and the bounced mail's envelope
    /// sender (us). The bounced mail's From is not among them: a list or an alias can bounce a
    /// mail back to the address that wrote it.
    static func excludedAddresses(of mail: ParsedMail, original: HeaderSection?) -> Set<String> {
        let originalSender = original?.field("Return-Path").flatMap { MailAddress.list($0.rawValue).first?.address }
        var excluded = Set(([mail.from?.address, originalSender] + mail.to.map(\.address)).compactMap { $0?.lowercased() }.filter { !$0.isEmpty })
        // The reporting system's own contact mailboxes ("for help write to <postmaster@…>").
        if let domain = mail.from?.address.split(separator: "@").last.map({ $0.lowercased() }), !domain.isEmpty {
            for local in FailedRecipients.contactLocalParts { excluded.insert("\(local)@\(domain)") }
        }
        return excluded
    }

    /// What the whole report says about trying again, read once however many recipients it names.
    struct ReportWording {
        /// The MTA has stopped trying ("I've given up", "permanent", "expired").
        var givenUp: Bool
        /// The MTA is still trying, and says so: nothing has failed yet.
        var delayNotice: Bool

        init(_ text: String) {
            let lower = String(text.prefix(50_000)).lowercased()
            givenUp = lower.containsAnyUTF8(["giving up", "given up", "gave up", "permanent", "not going to try again", "has been returned",
                                             "could not be delivered", "too long", "expired"])
            delayNotice = !givenUp && lower.containsAnyUTF8([
                "no action is required on your part", "only a temporary failure report", "will continue trying", "will keep trying",
                "will retry", "still trying", "has not yet been delivered", "has not been delivered yet", "is delayed for more than",
                "delivery has been delayed", "delays in delivering your message", "message delayed", "遅延",
            ])
        }
    }

    static func recipient(_ address: String, ownText: String, sharedText: String, sharedStatus: String?, report: ReportWording) -> DeliveryReport.Recipient {
        let status = mostSpecificStatus(in: ownText) ?? sharedStatus
        // A specific status code is the MTA's own classification; the prose decides only when it is
        // missing or says no more than its class.
        let byStatus = statusReason(status)
        let reason = byStatus != "undefined" && status?.hasSuffix(".0.0") == false
            ? byStatus
            : self.reason(status: status, diagnostic: ownText.isEmpty ? nil : ownText, text: sharedText)
        let temporary = status?.hasPrefix("4") == true && !report.givenUp
        let diagnostic = ownText.split(separator: "\n").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
            .joined(separator: " ")
        return .init(address: address, action: temporary || report.delayNotice ? "delayed" : "failed", status: status, reason: reason,
                     diagnostic: diagnostic.isEmpty ? nil : String(diagnostic.prefix(1000)))
    }

    /// An address in prose. Only where a local part can begin (the character before is none of
    /// its own), at most 64 characters of it (RFC 5321's limit) and 63 to a domain label: with `+`
    /// from any position, a 4,000-character run of letters ending in `@` backtracked from every
    /// one of its characters, 0.4 s a line and quadratic in its length, on the pool every request
    /// shares (the security review: a 64 KiB bounce of such lines held the service for 8 s).
    private static let addressPattern = try! NSRegularExpression(
        pattern: #"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+"#)

    static func addresses(in text: String) -> [String] {
        let range = NSRange(text.startIndex..., in: text)
        return addressPattern.matches(in: text, range: range).compactMap { match in
            Range(match.range, in: text).map { String(text[$0]).trimmingCharacters(in: CharacterSet(charactersIn: ".")) }
        }.map(MailAddress.normalize)
    }

    /// An SMTP reply as MTAs quote one: `550 5.1.1 …`, `550-5.1.1`, `550 - Requested action …`,
    /// `(#5.1.1)`. A version number or an IP address is none.
    private static let smtpReplyPattern = try! NSRegularExpression(pattern: #"(?:^|[\s:(\[])(?:[45][0-5]\d(?:[ -]+(?:[45]\.\d{1,3}\.\d{1,3}|[A-Za-z<])|\s+-\s)|#[45]\.\d{1,3}\.\d{1,3})"#, options: [.anchorsMatchLines])

    static func hasSMTPReply(_ text: String) -> Bool {
        let head = String(text.prefix(20_000))
        return smtpReplyPattern.firstMatch(in: head, range: NSRange(head.startIndex..., in: head)) != nil
    }

    private static let statusPattern = try! NSRegularExpression(pattern: #"\b([245])\.(\d{1,3})\.(\d{1,3})\b"#)

    /// `status` made specific by the remote server's own words: "Status: 5.0.0" says only the class,
    /// a diagnostic "550 5.1.1 user unknown" says which failure of that class it was.
    static func refine(_ status: String?, by diagnostic: String?) -> String? {
        guard let generic = status, generic.hasSuffix(".0.0"), let diagnostic,
              let specific = mostSpecificStatus(in: diagnostic), specific.first == generic.first
        else { return status }
        return specific
    }

    /// The first enhanced status code that says more than its class (`5.1.1` over `5.0.0`).
    static func mostSpecificStatus(in text: String) -> String? {
        let range = NSRange(text.startIndex..., in: text)
        let codes = statusPattern.matches(in: text, range: range).compactMap { Range($0.range, in: text).map { String(text[$0]) } }
            .filter { !$0.hasPrefix("2") }  // "250 2.1.0 Sender ok" in a transcript is not the failure
        return codes.first { !$0.hasSuffix(".0.0") } ?? codes.first
    }

    static func statusCode(in text: String) -> String? {
        let range = NSRange(text.startIndex..., in: text)
        guard let match = statusPattern.firstMatch(in: text, range: range), let found = Range(match.range, in: text) else { return nil }
        return String(text[found])
    }

    /// Sisimai's vocabulary of reasons: from the recipient's own diagnostic first (the most specific),
    /// then the enhanced status code, then the rest of the report's prose.
    static func reason(status: String?, diagnostic: String? = nil, text: String) -> String {
        if let diagnostic, let reason = phraseReason(diagnostic) { return reason }
        let byStatus = statusReason(status)
        if byStatus != "undefined" { return byStatus }
        return phraseReason(text) ?? "undefined"
    }

    private static func phraseReason(_ text: String) -> String? {
        let lower = text.lowercased()
        return reasonPhrases.first { lower.containsAnyUTF8($0.1) }?.0
    }

    static func statusReason(_ status: String?) -> String {
        guard let status else { return "undefined" }
        if status.hasPrefix("2") { return "delivered" }
        let detail = status.split(separator: ".").dropFirst().joined(separator: ".")
        switch detail {
        case "1.1", "1.0", "1.6": return "userunknown"
        case "1.2", "4.4": return "hostunknown"
        case "1.3", "5.2", "5.4": return "syntaxerror"
        case "2.1": return "suspend"
        case "2.2": return "mailboxfull"
        case "2.3": return "exceedlimit"
        case "3.2": return "notaccept"
        case "3.4": return "mesgtoobig"
        case "3.0", "3.5": return "systemerror"
        case "4.1", "4.0": return "networkerror"
        case "4.7", "4.6": return "expired"
        case "6.0": return "contenterror"
        case "7.1": return "rejected"
        case "7.9", "7.0": return "securityerror"
        case "7.26", "7.27", "7.25": return "authfailure"
        default: return "undefined"
        }
    }

    static let reasonPhrases: [(String, [String])] = [
        ("mailboxfull", ["mailbox full", "mailbox is full", "quota", "over quota", "insufficient system storage", "mailbox size limit", "too much mail", "容量"]),
        ("hostunknown", ["host unknown", "host not found", "domain not found", "name or service not known", "unrouteable mail domain", "no mx",
                         "domain name not found", "host or domain name not found", "remote domain doesnt exist", "domain doesn't exist",
                         "domain does not exist", "invalid domain name"]),
        // Before "address rejected": Postfix refuses on SPF or DMARC with "Recipient address rejected:
        // … SPF fail", a refusal of our mail that says nothing of the customer's address.
        ("authfailure", ["spf fail", "spf check", "spf validation", "spf record", "dmarc", "sender policy framework", "not authorized to send"]),
        ("userunknown", ["user doesn't have a", "recipient name is not recognized", "unknown recipient", "(000c05a6)", "user unknown", "unknown user", "no such user", "does not exist", "not exist", "invalid recipient", "recipient unknown",
                         "address rejected", "unknown recipient", "no mailbox", "mailbox not found", "no such mailbox", "unknown or illegal alias",
                         "user not found", "invalid mailbox", "recipient not found", "unrouteable address", "not a valid mailbox", "account does not exist"]),
        ("suspend", ["disabled", "suspended", "inactive", "deactivated", "account has been", "mailbox unavailable"]),
        ("spamdetected", ["spam", "junk mail"]),
        ("virusdetected", ["virus"]),
        ("requireptr", ["ptr record", "reverse dns", "reverse lookup", "no ptr"]),
        ("blocked", ["blacklist", "blocklist", "blocked", "listed in", "rbl", "poor reputation"]),
        ("norelaying", ["relay access denied", "relaying denied", "not permitted to relay", "relay not permitted"]),
        ("mesgtoobig", ["message size exceeds", "message too large", "too big", "message is too large"]),
        ("expired", ["retry timeout", "retry time", "timed out", "timeout", "too long", "expired", "could not be delivered for"]),
        ("exceedlimit", ["exceeds the limit", "exceeded"]),
        ("securityerror", ["authentication required", "authentication failed", "tls required"]),
        ("filtered", ["filtered", "refused by filter"]),
        ("rejected", ["rejected", "refused", "denied", "not a member of this mailing list", "not member"]),
    ]
}
