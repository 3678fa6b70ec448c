import Foundation

/// How mail systems that do not write RFC 3464 give their bounces away: a header only they set, a
/// sentence only their templates contain, or a sender and subject of theirs together with a line
/// naming a failed recipient. Described from the formats' public descriptions (Sisimai's per-MTA
/// modules name them: Exim, qmail, OpenSMTPD, Exchange 2003, Apache James, Courier, Domino, Notes,
/// fml, KDDI/au, BIGLOBE, InterScan, MessagingServer, Mimecast, Zoho, GMX, 1&1, Verizon and more).
enum BounceSignatures {
    /// Sentences written by a mail system's bounce template and by nobody else.
    static let templateSentences = [
        "this is the mailer-daemon, please do not reply",  // OpenSMTPD
        "this message was created automatically by mail delivery software",  // Exim, GMX, 1&1
        "hi. this is the qmail-send program",
        "this is the dragonfly mail agent",
        "did not reach the following recipient",  // Exchange 5.5–2003
        "delivery has failed to these recipients or groups",  // Exchange 2007 and later
        "delivery to the following recipients failed permanently",
        "delivery to the following recipient failed permanently",
        "the following addresses had permanent fatal errors",  // sendmail
        "----- transcript of session follows -----",
        "your message cannot be delivered to the following recipients",  // Oracle Messaging Server
        "unable to deliver message to the following address",  // qmail clones, X2
        "failed addresses follow:",  // Smail, Deutsche Telekom
        "------- failure reasons",  // Lotus Notes
        "this is an automatically generated delivery status notification",
        "we had trouble delivering your message. full details follow",
        "the following addresses had delivery problems",  // BIGLOBE
        "there was an error delivering your mail to <",
        "an error occurred while trying to deliver the mail to the following recipients",  // Amazon SES
        "your mail sent on:",  // KDDI (with "could not be delivered to:")
        "could not be delivered to: <",
        "unable to deliver message to: <",  // MailFoundry
        "this report relates to a message you sent with the following header fields",
        "your message to the following recipients cannot be delivered",  // Courier
        "delays in delivering your message",  // Courier's delay notice
        "a message is delayed for more than",  // OpenSMTPD's delay notice
        "a message that you sent has not yet been delivered to one or more of its",  // Exim's delay notice
        "message could not be delivered to mobile",  // Verizon
    ]

    /// Subjects (as prefixes, lower-cased) only mail systems use.
    static let subjectPrefixes = [
        "returned mail", "delivery failure", "failure delivery", "failed delivery", "mail delivery failed", "undeliverable",
        "delivery status notification", "delivery notification:", "[bounce]", "there was an error sending your mail",
        "mail system error", "failure notice", "non remis", "non_remis", "non recapitabile", "message delivery has failed",
        "notice: mail delivery status", "warning: delayed mail", "mail failure", "delivery_failure", "undelivered mail",
        "mail could not be delivered", "delivery failed", "nondeliverable", "returned to sender",
        "メッセージを配信できません", "メール配信に失敗しました",
    ]

    static func subjectLooksLikeBounce(_ subject: String) -> Bool {
        let lower = subject.lowercased().trimmingWhitespace()
        let stripped = lower.hasPrefix("[postmaster]") ? String(lower.dropFirst(12)).trimmingWhitespace() : lower
        return subjectPrefixes.contains { stripped.hasPrefix($0) } || stripped.contains("email delivery failure")
    }

    /// A customer forwarding a bounce to us is writing to us, whatever the bounce inside says.
    static func isForwardOrReply(_ subject: String) -> Bool {
        let lower = subject.lowercased().trimmingWhitespace()
        return ["fwd:", "fw:", "re:", "転送:", "転送：", "tr:", "wg:", "aw:"].contains { lower.hasPrefix($0) }
    }

    /// A template sentence near the top of the text, not below someone's own writing.
    static func hasTemplateSentence(_ text: String) -> Bool {
        // Most mail contains none of them: one byte search each over the top decides that.
        let head = String(text.prefix(8_000)).lowercased()
        guard head.containsAnyUTF8(templateSentences) else { return false }
        // Only the top of the text: a template sentence further down is someone quoting one.
        let lines = head.split(separator: "\n").lazy.map { ReplySplitter.trim(String($0)) }.filter { !$0.isEmpty }.prefix(40)
        for lower in lines {
            if lower.containsUTF8("forwarded message") || lower.containsUTF8("original message") || lower.hasPrefix(">") { return false }
            // A template's sentence starts its line; one inside a sentence is somebody quoting it.
            // (Banners count without their rules: "----- The following addresses had …".)
            let sentence = String(lower.drop { "-|=* \t".contains($0) })
            if templateSentences.contains(where: { sentence.hasPrefix($0) || lower.hasPrefix($0) }) { return true }
        }
        return false
    }

    /// Headers set only on a mail system's reports.
    static func hasReportHeader(_ mail: ParsedMail) -> Bool {
        let headers = mail.root.headers
        if headers.field("X-Failed-Recipients") != nil { return true }  // Exim
        if headers.field("X-MS-Embedded-Report") != nil { return true }  // Exchange 2003
        let subject = (mail.subject ?? "").lowercased()
        if headers.field("X-AHMailID") != nil, subject.hasPrefix("failure notice") { return true }  // Active!hunter
        if headers["X-Mailer"] == "m-FILTER", subject == "failure notice" { return true }
        // fml: the list server's administrator reports a rejected post or a loop.
        if headers.field("X-MLServer") != nil, (headers["From"] ?? "").contains("-admin@"), (mail.messageID ?? "").contains(".FML") { return true }
        // KDDI's and au's own notices (X-SPASIGN marks au's spam filter).
        if headers.field("X-SPASIGN") != nil, (headers["From"] ?? "").lowercased().contains("postmaster@") { return true }
        return false
    }

    /// Senders that are a mail system rather than a person.
    static let systemSenders = [
        "mailer-daemon", "mailer daemon", "postmaster", "post_master", "mail-daemon", "mailerdaemon", "mdaemon", "mail delivery subsystem",
        "mail delivery system", "courier mail server", "\"interscan", "interscan messaging", "mail administrator",
        "email delivery system", "microsoftexchange",
    ]

    /// `Return-Path: <>` (or the daemon's own): what a bounce's envelope carries (RFC 5321 §4.5.5).
    static func hasNullEnvelopeSender(_ mail: ParsedMail) -> Bool {
        guard let returnPath = mail.root.headers["Return-Path"]?.lowercased() else { return false }
        let bare = returnPath.filter { !$0.isWhitespace }
        return bare == "<>" || bare.isEmpty || bare.containsUTF8("mailer-daemon") || bare.containsUTF8("<postmaster@")
    }

    /// `Auto-Submitted: auto-generated` or `auto-replied` (RFC 3834 §5).
    static func isAutoSubmitted(_ mail: ParsedMail) -> Bool {
        guard let value = mail.autoSubmitted?.lowercased() else { return false }
        return value.hasPrefix("auto-")
    }

    static func isSystemSender(_ mail: ParsedMail) -> Bool {
        let from = (mail.root.headers["From"] ?? "").lowercased()
        return from.containsAnyUTF8(systemSenders)
    }
}
