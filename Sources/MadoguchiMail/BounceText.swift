import Foundation

/// Bounces that are not RFC 3464 reports: qmail, old Sendmail and Exim, Exchange, and the Japanese
/// carriers and ISPs, which say it in prose. Read from the sender, the subject and the text.
enum BounceText {
    static let senders = ["mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon", "mail delivery subsystem", "mail delivery system"]
    static let subjects = [
        "undeliver", "undelivered mail", "returned mail", "delivery status notification", "delivery failure", "delivery failed",
        "mail delivery failed", "failure notice", "non-delivery", "nondeliverable", "delivery has failed", "could not be delivered",
        "mail system error", "delivery notification", "message not delivered", "undeliverable", "rejected", "returned to sender",
        "warning: could not send", "permanent error", "配信不能", "配送エラー", "送信エラー", "メール配信エラー", "届きませんでした", "エラーメール",
        "配信できません", "配信に失敗", "mail could not", "delivery problem", "delivery status", "unable to deliver", "nicht zustellbar",
        "mail failure", "delivery failure", "failure",
    ]

    static func looksLikeBounce(_ mail: ParsedMail) -> Bool {
        // The raw header: "MAILER-DAEMON <>" has no address to parse but says who it is.
        let from = (mail.root.headers["From"] ?? "").lowercased()
        let subject = (mail.subject ?? "").lowercased()
        let fromDaemon = senders.contains { from.contains($0) }
        let bounceSubject = subjects.contains { subject.contains($0) }
        if fromDaemon && (bounceSubject || mail.subject == nil || statusCode(in: mail.text) != nil) { return true }
        if bounceSubject {
            // A customer writing "undelivered parcel" is not a bounce: require mail-system prose too.
            let text = mail.text.lowercased()
            return ["user unknown", "unknown user", "no such user", "delivery to the following recipient", "could not be delivered",
                    "permanent error", "the following address", "550 ", "554 ", "5.1.1", "mailbox unavailable", "recipient address rejected",
                    "host unknown", "以下のアドレス", "宛先", "配信できません", "mailbox is full", "failed recipient", "delivery has failed",
                    "was not delivered", "could not deliver", "returned to sender", "undeliverable", "the error that the other server returned"].contains { text.contains($0) }
                || MailClassifier.originalHeaders(MailClassifier.leaves(mail.root)) != nil && fromDaemon
        }
        return false
    }

    /// The first failed recipient named in the prose (more would mostly be relays and quoted
    /// headers), else the original message's To.
    static func recipients(in mail: ParsedMail, original: HeaderSection?) -> [DeliveryReport.Recipient] {
        let excluded = Set(([mail.from?.address] + mail.to.map(\.address) + [original?.field("From").flatMap { MailAddress.list($0.rawValue).first?.address }])
            .compactMap { $0?.lowercased() })
        let text = mail.text
        let status = statusCode(in: text)
        let reason = reason(status: status, text: text)  // prose bounces have no per-recipient diagnostic
        var found: [String] = []
        // "smtp.mailfrom=…" in quoted Authentication-Results is not a recipient.
        for address in addresses(in: text)
        where !excluded.contains(address.lowercased()) && !found.contains(address) && !address.contains("=") {
            found.append(address)
            if found.count >= 20 { break }
        }
        if found.isEmpty, let to = original?.field("To") {
            found = MailAddress.list(to.rawValue).map(\.address).filter { !excluded.contains($0.lowercased()) }
        }
        let action = status?.hasPrefix("4") == true ? "delayed" : "failed"
        return found.prefix(1).map { .init(address: $0, action: action, status: status, reason: reason, diagnostic: nil) }
    }

    private static let addressPattern = try! NSRegularExpression(pattern: #"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"#)

    static func addresses(in text: String) -> [String] {
        let range = NSRange(text.startIndex..., in: text)
        return addressPattern.matches(in: text, range: range).compactMap { match in
            Range(match.range, in: text).map { String(text[$0]).trimmingCharacters(in: CharacterSet(charactersIn: ".")) }
        }.map(MailAddress.normalize)
    }

    private static let statusPattern = try! NSRegularExpression(pattern: #"\b([245])\.(\d{1,3})\.(\d{1,3})\b"#)

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
        return reasonPhrases.first { $0.1.contains(where: { lower.contains($0) }) }?.0
    }

    private static func statusReason(_ status: String?) -> String {
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
        ("userunknown", ["user unknown", "unknown user", "no such user", "does not exist", "not exist", "invalid recipient", "recipient unknown",
                         "address rejected", "unknown recipient", "no mailbox", "mailbox not found", "no such mailbox", "unknown or illegal alias",
                         "user not found", "invalid mailbox", "recipient not found", "unrouteable address", "not a valid mailbox", "account does not exist"]),
        ("hostunknown", ["host unknown", "host not found", "domain not found", "name or service not known", "unrouteable mail domain", "no mx", "domain name not found", "host or domain name not found"]),
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
        ("rejected", ["rejected", "refused", "denied"]),
    ]
}
