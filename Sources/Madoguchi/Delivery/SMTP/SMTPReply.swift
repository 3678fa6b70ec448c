/// One reply of an SMTP server: a three-digit code and its text lines (several for `250-` replies).
package struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    package var code: Int
    var lines: [String]

    var isPositive: Bool { (200..<400).contains(code) }
    /// 4xx: the server may accept later (RFC 5321 §4.2.1).
    var isTransient: Bool { (400..<500).contains(code) }
    /// 5xx: it will not, for this request.
    var isPermanent: Bool { (500..<600).contains(code) }

    /// The enhanced status code the text begins with (RFC 3463: `5.1.1`), if any.
    var enhancedStatus: (class: Int, subject: Int, detail: Int)? {
        enhancedStatus(in: (lines.first ?? "").prefix { $0 != " " })
    }

    /// `word` read as an enhanced status code of this reply's class (`5.1.1` for a 550).
    private func enhancedStatus(in word: Substring) -> (class: Int, subject: Int, detail: Int)? {
        let parts = word.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let first = Int(parts[0]), let subject = Int(parts[1]), let detail = Int(parts[2]),
              [2, 4, 5].contains(first), String(first) == String(code / 100) else { return nil }
        return (first, subject, detail)
    }

    /// A permanent refusal of RCPT that is about the address itself (no such mailbox, a bad
    /// domain: RFC 3463's 5.1.x), rather than about the relay, our sender or the message (5.7.x
    /// policy, "relay access denied", 5.2.x mailbox status, 5.3.x system). Only these mark the
    /// customer's address undeliverable.
    ///
    /// A bare 550, 551 or 553 counts only when its text says the user is unknown: relays give the
    /// same codes for "relaying denied" (Exim's 550, qmail's 553 … rcpthosts (#5.7.1)), and a relay
    /// that stops taking our mail would otherwise mark every customer in the outbox undeliverable.
    ///
    /// Two 5.1.x codes are about the sender, not the recipient (5.1.7 a bad sender mailbox, 5.1.8
    /// a bad sender domain), and Postfix gives its sender checks at RCPT with other 5.1.x codes too
    /// ("550 5.1.0 <support@…>: Sender address rejected: User unknown"): a relay that cannot
    /// resolve our own domain would otherwise mark every customer in the outbox undeliverable.
    var refusesTheAddress: Bool {
        guard isPermanent else { return false }
        let said = text.lowercased()
        if let status = enhancedStatus ?? enhancedStatusInText {
            // The words, not an address they quote (<info@sendergroup.jp> is a recipient's).
            let words = said.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
            return status.subject == 1 && ![7, 8].contains(status.detail) && !words.contains("sender")
        }
        guard [550, 551, 553].contains(code) else { return false }
        // About our sender or the relay, whatever else it says (Exim's sender verification: "550
        // Unrouteable address … Sender verify failed").
        guard !Self.notAboutTheAddress.contains(where: { said.contains($0) }) else { return false }
        return Self.unknownAddressPhrases.contains { said.contains($0) }
    }

    /// How servers that give no enhanced code say the mailbox does not exist. Not RFC 5321's generic
    /// "mailbox unavailable", which any 550 may say.
    static let unknownAddressPhrases = [
        "user unknown", "unknown user", "no such user", "no such mailbox", "no such recipient", "unknown recipient",
        "mailbox not found", "does not exist", "doesn't exist", "invalid recipient", "invalid mailbox", "not our customer",
        "no mailbox",
    ]

    /// Words that make a refusal about our sending rather than the recipient.
    static let notAboutTheAddress = ["sender", "relay", "verif", "authenticat", "policy", "spam", "blocked", "blacklist", "reputation"]

    /// A permanent refusal, to RCPT or after the final dot, of our relaying rather than of this mail:
    /// "Relay access denied" (a relay that no longer knows us: a password dropped from
    /// MADOGUCHI_SMTP_URL, a new sending IP), authentication required, our sender refused or not
    /// verified, qmail's rcpthosts. It is said to every reply alike: failed for good, the whole
    /// outbox failed in one pass and each reply had to be written again; waited out, as a refusal of
    /// the session or of MAIL FROM is, the next attempt after the fix delivers them.
    /// A refusal that names the address unknown is about the address, whatever table it was looked
    /// up in ("User unknown in relay recipient table").
    var refusesOurSending: Bool {
        guard isPermanent, !refusesTheAddress else { return false }
        let said = text.lowercased().replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
        // Not a refusal that speaks of the recipient ("User unknown in relay recipient table" without
        // an enhanced code; "Sender blocked by recipient's filter"): that one fails the mail alone.
        // One that speaks of our sender is ours, whatever else it says (Postfix: "Sender address
        // rejected: User unknown in virtual mailbox table").
        if said.contains("recipient") { return false }
        if said.contains("sender") { return true }
        if Self.unknownAddressPhrases.contains(where: { said.contains($0) }) { return false }
        return Self.aboutOurSending.contains { said.contains($0) }
    }

    static let aboutOurSending = ["relay", "authenticat", "sender", "verif", "rcpthosts"]

    /// An enhanced status code written later in the text, as qmail does: "553 sorry, … (#5.7.1)".
    private var enhancedStatusInText: (class: Int, subject: Int, detail: Int)? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "(" || $0 == ")" || $0 == "#" || $0 == "[" || $0 == "]" || $0 == "," })
        for word in words where word.split(separator: ".").allSatisfy({ $0.count <= 3 && $0.allSatisfy(\.isASCII) }) {
            if let status = enhancedStatus(in: word) { return status }
        }
        return nil
    }

    /// 552 or 5.3.4: the message is larger than the server takes.
    var refusesTheSize: Bool {
        if let status = enhancedStatus, status.subject == 3, status.detail == 4 { return true }
        return code == 552
    }

    var text: String { lines.joined(separator: " ") }
    package var description: String { "\(code) \(text)" }
}

/// What can go wrong talking to a relay, sorted by what the outbox does about it.
enum SMTPError: Error, CustomStringConvertible {
    /// The server answered `reply` to `command`.
    case rejected(command: String, reply: SMTPReply)
    /// No reply within the step's timeout.
    case timedOut(step: String)
    /// The connection closed or failed (refused, reset, TLS failure).
    case connection(String)
    /// The server broke the protocol (a reply that is not `NNN text`).
    case garbled(String)
    /// Something we required is not offered (STARTTLS, AUTH, SMTPUTF8, a size the server accepts).
    case unsupported(String)
    /// Setting up the session failed (greeting, EHLO, STARTTLS, AUTH): the relay or our settings for it
    /// are at fault, not the mail, so even a 5xx there (a rotated password's 535) is worth waiting out
    /// for someone to fix; failing every reply for good at once would not be.
    indirect case session(SMTPError)

    var description: String {
        switch self {
        case .rejected(let command, let reply): "\(command) was answered \(reply)"
        case .timedOut(let step): "no reply to \(step) in time"
        case .connection(let reason): "connection: \(reason)"
        case .garbled(let line): "not an SMTP reply: \(line.prefix(200))"
        case .unsupported(let what): what
        case .session(let error): "setting up the session with the relay: \(error)"
        }
    }

    /// Whether waiting and trying again could help: 4xx replies, timeouts and broken connections can,
    /// and anything that stopped the session before a mail was offered; 5xx replies to the mail and
    /// missing capabilities it needs cannot.
    ///
    /// A 5xx to MAIL FROM is about us, not the mail ("530 5.7.0 Authentication required", "550 5.7.1
    /// Sender not owned", a daily quota's "550 5.4.5"), as a 535 while setting up is: failing each
    /// reply the worker held then for good would fail the whole outbox in one pass. Only a refusal
    /// of the mail's size (552, 5.3.4) is the mail's own.
    var isTransient: Bool {
        switch self {
        case .session: true
        case .rejected("MAIL FROM", let reply): !reply.isPermanent || !reply.refusesTheSize
        case .rejected(_, let reply): !reply.isPermanent
        case .timedOut, .connection, .garbled: true
        case .unsupported: false
        }
    }
}
