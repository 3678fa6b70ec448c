import Foundation

/// The failed recipients a prose bounce names, each with the lines that explain its failure.
///
/// MTAs that do not write RFC 3464 still put each failed recipient in a recognisable place: on a line
/// of its own (`<addr>:` for qmail and Postfix, `  addr` for Exim, `addr [reason]`, `addr on <date>`
/// for Exchange 2003, `addr: reason` for OpenSMTPD) or after a label ("Could not be delivered to:",
/// "Recipient address:", "RCPT TO:" in a details block, "rejected recipient", "* addr"), and they write
/// the reason on the lines below. Addresses anywhere else are never taken: in prose they name the
/// reporter's support desk, in echoed commands (`>>> RCPT TO:<…>`, `<<< 550 <…>`) the same recipient
/// again, in quoted headers the sender, and in parentheses an alias or a Message-ID.
struct FailedRecipients {
    struct Entry {
        var address: String
        /// The recipient's own line and the lines below it, up to the next recipient.
        var lines: [String]
    }

    /// Lines before the first recipient: the report's explanation, shared by every recipient.
    private(set) var preamble: [String] = []
    private(set) var entries: [Entry] = []

    /// At most this many recipients, and lines read: a report naming more is a list, not a bounce,
    /// and a parse must stay linear however large the mail.
    static let entryLimit = 200
    static let lineLimit = 20_000

    init(errorText: String, excluding excluded: Set<String>) {
        var positions: [String: Int] = [:]
        var current: Int?
        var previousWasHeader = false
        for rawLine in errorText.split(separator: "\n", omittingEmptySubsequences: false).prefix(Self.lineLimit) {
            let line = String(rawLine)
            // A folded continuation of a quoted header (References:, To:) names nobody who failed.
            let isContinuation = previousWasHeader && (line.hasPrefix(" ") || line.hasPrefix("\t"))
            previousWasHeader = isContinuation || Self.looksLikeHeaderField(line)
            if !isContinuation, let (address, bare) = Self.recipientLine(line), !Self.isExcluded(address, excluded),
               // A help desk's address on a line of its own is a contact, not a failure.
               !(bare && Self.isContactMailbox(address)) {
                let key = address.lowercased()
                if let existing = positions[key] {
                    // The same recipient again (an echoed reply): later lines still belong to it.
                    entries[existing].lines.append(line)
                    current = existing
                } else if entries.count < Self.entryLimit {
                    positions[key] = entries.count
                    current = entries.count
                    entries.append(Entry(address: address, lines: [line]))
                }
            } else if let current {
                if entries[current].lines.count < 200 { entries[current].lines.append(line) }
            } else if preamble.count < 200 {
                preamble.append(line)
            }
        }
    }

    /// `Name: value` with a header field's name: the start of a quoted header.
    private static func looksLikeHeaderField(_ line: String) -> Bool {
        guard let colon = line.utf8.firstIndex(of: UInt8(ascii: ":")) else { return false }
        let name = line.utf8[..<colon]
        return !name.isEmpty && name.count < 40 && name.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D }
    }

    // MARK: - Where the error text ends

    /// The report's own text: everything before the copy of the original message that most MTAs
    /// append in the same text part ("--- Below this line is a copy of the message.",
    /// "------ This is a copy of the message, including all the headers. ------", …).
    static func errorPart(of text: String) -> Substring {
        text.startOfFirstLine(skippingFirst: true, where: isOriginalMessageMarker).map { text[..<$0] } ?? text[...]
    }

    private static func isOriginalMessageMarker(_ line: Substring) -> Bool {
        // Most lines are prose: only a banner, a pointer ending in ':' or "follows", or a MIME
        // header can be a marker, and that is cheap to rule out before lower-casing anything.
        guard let first = line.utf8.first(where: { $0 != 0x20 && $0 != 0x09 }), let last = line.utf8.last(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D })
        else { return false }
        let shaped = "-=|*:.sgOoTtCcBb".utf8.contains(first) || "-=|*:.sg".utf8.contains(last)
        guard shaped else { return false }
        let lower = ReplySplitter.trim(String(line)).lowercased()
        guard !lower.isEmpty else { return false }
        if lower.hasPrefix("content-type: message/rfc822") || lower.hasPrefix("content-type: text/rfc822-headers") { return true }
        let mentionsOriginal = ["original message", "copy of the message", "copy of the mail header", "original mail", "unsent message",
                                "header of the original message", "original message headers", "returned message", "message headers follow",
                                "mensaje original", "message text follows", "message header follows", "no message was collected"]
            .contains { lower.containsUTF8($0) }
        guard mentionsOriginal else { return false }
        // A banner ("----- Original message -----") or a pointer to what follows, not a sentence that mentions it.
        return lower.hasPrefix("-") || lower.hasPrefix("=") || lower.hasPrefix("|") || lower.hasPrefix("*")
            || lower.hasSuffix(":") || lower.hasSuffix("follows.") || lower.hasSuffix("follows") || lower.hasSuffix("following.")
            || lower.hasPrefix("original message follows") || lower.hasPrefix("original mail as follows")
            || lower.hasPrefix("the attachment contains the original")
    }

    // MARK: - Recipient lines

    /// An address as MTAs print one: a dot-atom or quoted local part, a dotted domain.
    private static let address = #"(?:"[^"\r\n]{1,64}"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"#

    /// Each pattern captures the recipient in group 1. Tried on the line with its indentation removed.
    private static let patterns: [NSRegularExpression] = [
        // `<addr>:`, `<addr>... User unknown`, `<addr>` alone (qmail, Postfix, sendmail, X2, GMX).
        #"^<(ADDR)>(?:\s*$|:|\.\.\.|\s)"#,
        // `addr`, `addr:`, `addr: reason`, `addr [reason]`, `addr (reason)`, `addr on <date>`, `addr ... failed`.
        #"^"?(ADDR)"?(?:\s*$|:|\.\.\.|\s+\[|\s+\(|\s+on\s|\s+\.\.\.\s|\s+<[^@>]*>\s*$|\s+-\s|\s+Invalid|\s+ERROR_CODE)"#,
        // A labelled recipient: KDDI, MessagingServer, Domino, IMail, MailFoundry, DragonFly, X6, James, Mimecast.
        #"(?i)^(?:could not be delivered to|recipient address|recipient|failed recipient|original-recipient|final-recipient|unknown user|unable to deliver message to|undeliverable to|there was an error delivering your mail to|rejected recipient|smtp server <[^>]*> rejected recipient|the following recipients returned permanent errors|delivery to the following recipient failed[a-z ]*|rcpt to)\s*:?\s*(?:rfc822;\s*)?<?(ADDR)>?"#,
        #"(?i)(?:rejected recipient|could not be delivered to:|unable to deliver message to:?|error delivering your mail to|member of this mailing list)\s*<(ADDR)>"#,
        // Bullets: `* addr` (X3), `-- addr` (Mimecast), `• addr`.
        #"^(?:\*|-{1,2}|•|・)\s+<?(ADDR)>?\s*$"#,
        // sendmail's own reply to the recipient: `550 <addr>... User unknown`, `550 5.1.1 addr... User unknown`.
        #"^[45]\d\d[ -](?:[45]\.\d{1,3}\.\d{1,3}\s+)?<?(ADDR)>?\.\.\."#,
        // Japanese carriers and ISPs: `宛先: addr`, `送信先：<addr>`.
        #"^(?:宛先|あて先|送信先|受信者)\s*[:：]\s*<?(ADDR)>?"#,
    ].map { try! NSRegularExpression(pattern: $0.replacingOccurrences(of: "ADDR", with: address)) }

    /// Lines that quote the original message's headers or echo the SMTP dialogue: the addresses on
    /// them are the sender's, or a recipient named again.
    private static let quotedHeaderPrefixes = [
        "from:", "sender:", "reply-to:", "return-path:", "received:", "message-id:", "message-id", "in-reply-to:", "references:",
        "subject:", "date:", "mail from:", "original sender:", "sender address:", "cc:", "bcc:", "errors-to:", "delivered-to:",
        "x-", "authentication-results:", "dkim-signature:", "arc-", "list-", "envelope-to:", ">", "<<<", "from ",
    ]

    /// The recipient a line names, and whether it is only an address on a line of its own (or a
    /// bullet), the weakest of the places.
    static func recipientLine(_ line: String) -> (address: String, bare: Bool)? {
        guard line.utf8.contains(UInt8(ascii: "@")) else { return nil }
        let trimmed = ReplySplitter.trim(line)
        guard trimmed.utf8.count < 4000 else { return nil }
        let lower = trimmed.lowercased()
        if quotedHeaderPrefixes.contains(where: { lower.hasPrefix($0) }) { return nil }
        // `To:` in a quoted header block names the original addressees, unless nothing else does;
        // only the labelled `RCPT TO:` of a details block (James, Verizon) names the failed one.
        if lower.hasPrefix("to:") { return nil }
        let range = NSRange(trimmed.startIndex..., in: trimmed)
        for (index, pattern) in patterns.enumerated() {
            guard let match = pattern.firstMatch(in: trimmed, range: range), let found = Range(match.range(at: 1), in: trimmed) else { continue }
            let candidate = MailAddress.normalize(String(trimmed[found]).trimmingCharacters(in: CharacterSet(charactersIn: ".")))
            return (candidate, index == 1 || index == 4)
        }
        return nil
    }

    /// Never blamed: the report's own addresses and ours (passed in), and the mail daemon itself.
    /// (`postmaster@` can be a real recipient when it stands in a recipient's place; in prose it is
    /// the reporter's contact, see `isContactMailbox`.)
    static func isExcluded(_ address: String, _ excluded: Set<String>) -> Bool {
        let lower = address.lowercased()
        if excluded.contains(lower) { return true }
        let local = lower.split(separator: "@").first.map(String.init) ?? lower
        // A list's own control addresses (fml's -ctl and -admin, -request, owner-) run the list.
        return ["mailer-daemon", "mail-daemon", "mailerdaemon"].contains(local)
            || ["-ctl", "-admin", "-request", "-owner", "-bounces"].contains { local.hasSuffix($0) } || local.hasPrefix("owner-")
    }

    static let contactLocalParts = ["postmaster", "abuse", "support", "help", "helpdesk", "help-desk", "noreply", "no-reply", "hostmaster",
                                    "webmaster", "admin", "mailer-daemon"]

    /// The mailboxes a report tells you to write to for help: never the failed recipient when they
    /// only appear in the prose.
    static func isContactMailbox(_ address: String) -> Bool {
        let local = address.lowercased().split(separator: "@").first.map(String.init) ?? ""
        return contactLocalParts.contains(local)
    }

    /// Addresses in the report's prose, outside quoted headers and echoed commands: the last resort
    /// when no line stands in a recipient's place.
    static func proseAddresses(in errorText: String) -> [String] {
        errorText.split(separator: "\n").prefix(lineLimit).flatMap { line -> [String] in
            // The address pattern backtracks on long runs without '@': skip what cannot match.
            guard line.utf8.contains(UInt8(ascii: "@")), line.utf8.count < 4000 else { return [] }
            let lower = line.trimmingWhitespace().lowercased()
            if quotedHeaderPrefixes.contains(where: { lower.hasPrefix($0) }) || lower.hasPrefix("to:") || lower.contains("message-id") { return [] }
            return BounceText.addresses(in: String(line))
        }
    }

    /// The headers of an original message copied into the text after a marker (non-MIME bounces).
    private static let headerFieldStarts = ["received:", "return-path:", "from:", "to:", "date:", "message-id:", "subject:"]

    static func inlineOriginalHeaders(in text: String) -> HeaderSection? {
        let rest = text[FailedRecipients.errorPart(of: text).endIndex...]
        // From the first line that starts like a header field to the end.
        guard let start = rest.startOfFirstLine(where: { line in headerFieldStarts.contains(where: line.hasASCIIPrefixIgnoringCase) }) else { return nil }
        var defects: [String] = []
        let section = HeaderSection.split(ArraySlice(Array(rest.utf8[start...])), defects: &defects).0
        return section.fields.isEmpty ? nil : section
    }
}
