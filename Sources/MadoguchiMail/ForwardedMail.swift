import Foundation

/// The mail inside a forward: who first wrote it, its subject and text, and what the forwarder wrote
/// above it. A shop owner who finds a customer's inquiry in their own mailbox forwards it to the
/// support address; the desk then files it under the customer, not the owner (peers do the same:
/// Zendesk and Help Scout read the original sender out of an agent's forward).
///
/// Read from the three shapes forwards take: a separator line with a header block under it
/// (Gmail's "---------- Forwarded message ---------", Thunderbird's "-------- 転送メッセージ --------",
/// Apple Mail's "Begin forwarded message:"), Outlook's "-----Original Message-----" or rule line
/// or bare `From:`/`差出人:` block under a `FW:` subject, and the original attached whole as
/// `message/rfc822`. Whether to believe it is the caller's decision: anyone can write a header
/// block into a mail, so only a forward from someone the desk knows should be filed this way.
public struct ForwardedMail: Sendable, Equatable {
    public var from: MailAddress
    public var subject: String?
    /// The forwarded mail's text, and that text split as any mail's is.
    public var text: String
    public var visibleText: String
    public var quotedText: String
    /// What the forwarder wrote above the forwarded mail, without their signature; empty when nothing.
    public var note: String
    /// The original's Message-ID, when it came attached whole.
    public var messageID: String?
}

extension ParsedMail {
    /// The mails this one forwards, outermost first (a forward of a forward names the colleague,
    /// then the customer), at most five; empty when it is no forward. Which of them is the customer
    /// is the caller's to decide: the desk knows its agents and its own address, the parser does not.
    /// A reply is no forward, whatever it quotes: a subject that starts with "Re:", or a separator
    /// under an "On … wrote:" line (an HTML reply quotes without `>`).
    public func forwardedMails() -> [ForwardedMail] {
        guard mayBeForward else { return [] }
        if let attached = ForwardedMail.attachedOriginal(of: self) { return [attached] }
        return ForwardedMail.inlineOriginals(in: text, subjectIsForward: ForwardedMail.isForwardSubject(subject))
    }

    /// Cheap to ask: whether `forwardedMails` can find anything (a separator is history to the
    /// splitter, so an inline forward has quoted text; or one mail attached whole), and the subject
    /// is not a reply's.
    public var mayBeForward: Bool {
        guard !ForwardedMail.isReplySubject(subject) else { return false }
        return !quotedText.isEmpty || attachments.contains { $0.mediaType == "message/rfc822" }
    }
}

extension ForwardedMail {
    /// "Fwd:", "FW:", "転送:" and the prefixes of other languages' mail clients, before any "Re:".
    public static func isForwardSubject(_ subject: String?) -> Bool {
        guard let subject else { return false }
        let lower = ReplySplitter.trim(subject).lowercased()
        return forwardPrefixes.contains { lower.hasPrefix($0 + ":") || lower.hasPrefix($0 + "：") || lower.hasPrefix("[" + $0 + ":") }
    }

    private static let forwardPrefixes = ["fwd", "fw", "転送", "tr", "wg", "rv", "enc", "doorst"]

    /// "Re:", "返信:", "AW:" … first: an answer, though it may quote a forward.
    static func isReplySubject(_ subject: String?) -> Bool {
        guard let subject else { return false }
        let lower = ReplySplitter.trim(subject).lowercased().precomposedStringWithCompatibilityMapping
        return ["re", "返信", "aw", "sv", "vs", "antw", "odp", "res"].contains { lower.hasPrefix($0 + ":") || lower.hasPrefix($0 + "：") }
    }

    /// The subject without its forward prefix ("Fwd: Re: 返品" → "Re: 返品").
    public static func withoutForwardPrefix(_ subject: String?) -> String? {
        guard let subject, isForwardSubject(subject) else { return subject }
        var rest = Substring(ReplySplitter.trim(subject))
        if rest.hasPrefix("[") { rest = rest.dropFirst(); if rest.hasSuffix("]") { rest = rest.dropLast() } }
        guard let colon = rest.firstIndex(where: { $0 == ":" || $0 == "：" }) else { return subject }
        return ReplySplitter.trim(String(rest[rest.index(after: colon)...]))
    }

    // MARK: - Attached whole

    /// One mail attached as `message/rfc822` under a forward's subject, or with nothing written
    /// beside it: the forward-as-attachment of Outlook and Thunderbird. Several attached mails are a
    /// bundle, not one inquiry.
    static func attachedOriginal(of mail: ParsedMail) -> ForwardedMail? {
        let attached = mail.attachments.filter { $0.mediaType == "message/rfc822" }
        guard attached.count == 1,
              isForwardSubject(mail.subject) || mail.visibleText.isEmpty else { return nil }
        let original = ParsedMail(attached[0].content)
        guard let from = original.from, from.address.contains("@") else { return nil }
        return ForwardedMail(from: from, subject: original.subject, text: original.text, visibleText: original.visibleText,
                             quotedText: original.quotedText, note: ReplySplitter.split(mail.text).visible.trimmedNote,
                             messageID: original.messageID)
    }

    // MARK: - Written inline

    /// Every forward separator or header block in `text`, in order, each with the header block under
    /// it and the text under that; the note is what the forwarder wrote above the first. A block under
    /// "-----Original Message-----" or a bare `From:` block is a reply's quoted history unless the
    /// subject says forward; nothing under an attribution line ("On … wrote:") is a forward of this
    /// mail's sender.
    static func inlineOriginals(in text: String, subjectIsForward: Bool) -> [ForwardedMail] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        let trimmed = lines.map(ReplySplitter.trim)
        let lowered = trimmed.map { $0.lowercased() }
        var found: [ForwardedMail] = []
        var note: String?
        var index = 0
        while index < lowered.count, found.count < 5 {
            if note == nil, ReplySplitter.isAttributionLine(trimmed, at: index) { break }
            let explicit = isForwardSeparator(lowered[index])
            guard explicit || ReplySplitter.isHistoryStart(lowered, at: index) else { index += 1; continue }
            guard explicit || subjectIsForward else { break }
            // The header block starts on the line itself when it is the `From:` line.
            let blockStart = HeaderBlock.fieldName(of: lowered[index]) == nil ? index + 1 : index
            guard let block = HeaderBlock(lines, from: blockStart) else { index += 1; continue }
            if note == nil { note = ReplySplitter.split(lines[..<index].joined(separator: "\n")).visible.trimmedNote }
            if let from = block.from {
                let body = lines[block.end...].joined(separator: "\n")
                let split = ReplySplitter.split(body)
                found.append(ForwardedMail(from: from, subject: block.subject, text: body.trimmedNote, visibleText: split.visible,
                                           quotedText: split.quoted, note: note ?? "", messageID: nil))
            }
            index = max(block.end, index + 1)
        }
        return found
    }

    /// Lines that say a forwarded mail follows, whatever the subject.
    static func isForwardSeparator(_ lower: String) -> Bool {
        if lower == "begin forwarded message:" || lower == "転送されたメッセージ:" { return true }
        guard lower.hasPrefix("-") else { return false }
        let words = lower.trimmingCharacters(in: CharacterSet(charactersIn: "- "))
        return ["forwarded message", "forwarded message follows", "転送メッセージ", "転送されたメッセージ"].contains(words)
    }

    /// The `From:` … `Subject:` lines of a forwarded mail, as mail clients write them: a field per
    /// line (a long value continued on the next), ended by a blank line.
    struct HeaderBlock {
        var from: MailAddress?
        var subject: String?
        /// The first line after the block.
        var end: Int

        init?(_ lines: [String], from start: Int) {
            var index = start
            while index < lines.count, ReplySplitter.trim(lines[index]).isEmpty, index < start + 2 { index += 1 }
            var fields: [(name: String, value: String)] = []
            while index < lines.count {
                let line = Self.withoutStars(ReplySplitter.trim(lines[index]))
                if line.isEmpty { break }
                if let name = Self.fieldName(of: line.lowercased()) {
                    let value = line.drop { $0 != ":" && $0 != "：" }.dropFirst()
                    fields.append((name, ReplySplitter.trim(String(value))))
                } else if fields.isEmpty {
                    return nil
                } else {
                    fields[fields.count - 1].value += " " + line
                }
                index += 1
                if fields.count > 12 { break }
            }
            guard fields.contains(where: { $0.name == "from" }) else { return nil }
            end = index
            from = fields.first { $0.name == "from" }.flatMap { Self.address($0.value) }
            subject = fields.first { $0.name == "subject" }.map(\.value)
        }

        /// The field a line of a header block starts with, by the names mail clients write in
        /// English and Japanese ("from", "subject" or "other"); nil for a line that starts none.
        static func fieldName(of lower: String) -> String? {
            let plain = withoutStars(lower)
            for (name, kind) in names where plain.hasPrefix(name) {
                let rest = plain.dropFirst(name.count).drop { $0 == " " }
                if rest.first == ":" || rest.first == "：" { return kind }
            }
            return nil
        }

        private static let names: [(String, String)] = [
            ("from", "from"), ("差出人", "from"), ("送信者", "from"), ("subject", "subject"), ("件名", "subject"),
            ("date", "other"), ("sent", "other"), ("to", "other"), ("cc", "other"), ("reply-to", "other"),
            ("送信日時", "other"), ("日時", "other"), ("日付", "other"), ("送信日", "other"), ("宛先", "other"), ("返信先", "other"),
        ]

        /// Outlook's rich text comes through as "*From:* …".
        private static func withoutStars(_ line: String) -> String {
            line.contains("*") ? line.replacingOccurrences(of: "*", with: "") : line
        }

        /// `Taro <t@x>`, `"Yamada" <t@x>`, Outlook's `Taro [mailto:t@x]` and `Taro <t@x<mailto:t@x>>`.
        static func address(_ value: String) -> MailAddress? {
            var cleaned = value
            if let mailto = cleaned.range(of: "[mailto:") {
                let inside = cleaned[mailto.upperBound...].prefix { $0 != "]" }
                cleaned = String(cleaned[..<mailto.lowerBound]) + "<" + inside + ">"
            }
            if let mailto = cleaned.range(of: "<mailto:") {
                cleaned = String(cleaned[..<mailto.lowerBound]) + ">"
            }
            // One mailbox, named as written before its <address>: Outlook's "Tanaka, Ichiro <i@x>" is
            // no list of two (its comma is the name's).
            if let open = cleaned.firstIndex(of: "<"), let close = cleaned[open...].firstIndex(of: ">") {
                let address = String(cleaned[cleaned.index(after: open)..<close])
                guard address.contains("@"), let parsed = MailAddress.list(Array("<\(address)>".utf8)).first else { return nil }
                let name = cleaned[..<open].trimmingCharacters(in: CharacterSet(charactersIn: " \t\"'"))
                return MailAddress(name: name.isEmpty ? nil : name, address: parsed.address)
            }
            guard let found = MailAddress.list(Array(cleaned.utf8)).first, found.address.contains("@") else { return nil }
            return found
        }
    }
}

private extension String {
    var trimmedNote: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
