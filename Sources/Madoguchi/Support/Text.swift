import MadoguchiMail

/// Text bound for PostgreSQL, which refuses NUL in `text` and `jsonb`.
enum Text {
    /// `text` with full-width ASCII (U+FF01–FF5E), as a Japanese input method types it, as ASCII,
    /// except the scalars in `keeping`: one UTF-16 unit for one, so offsets are unchanged.
    static func foldingFullWidthASCII(_ text: String, keeping: Set<UInt32> = []) -> String {
        guard text.unicodeScalars.contains(where: { (0xFF01...0xFF5E).contains($0.value) }) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            (0xFF01...0xFF5E).contains(scalar.value) && !keeping.contains(scalar.value) ? Unicode.Scalar(scalar.value - 0xFEE0)! : scalar
        }))
    }

    /// One line: each run of line breaks becomes one space. A customer's subject can hold line
    /// breaks (an encoded word may carry one); a header line cannot, and the mail composer refuses
    /// them rather than let them add header fields.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// NUL is the byte 0 in UTF-8 and never part of another character, so a byte scan finds it:
    /// Foundation's `contains` would bridge every body through NSString (a profile showed it at 1.5 %
    /// of ingest, on text that almost never holds a NUL).
    static func clean(_ text: String) -> String {
        text.utf8.contains(0) ? String(decoding: text.utf8.filter { $0 != 0 }, as: UTF8.self) : text
    }

    /// At most `characters` characters as PostgreSQL counts them (`length()`, which the schema's
    /// CHECKs use): code points. Swift's `prefix` counts grapheme clusters, which can hold several
    /// (❤️ is two, a decomposed か two), so 2,000 of them could still break a 2,000 CHECK.
    static func limit(_ text: String, _ characters: Int) -> String {
        prefix(clean(text), characters)
    }

    /// The first `characters` code points of `text` (see `limit`), without cleaning it.
    static func prefix(_ text: some StringProtocol, _ characters: Int) -> String {
        let scalars = text.unicodeScalars
        guard let end = scalars.index(scalars.startIndex, offsetBy: characters, limitedBy: scalars.endIndex) else { return String(text) }
        return String(String.UnicodeScalarView(scalars[..<end]))
    }

    /// How many characters PostgreSQL's `length()` counts in `text`.
    static func length(_ text: some StringProtocol) -> Int { text.unicodeScalars.count }
}

extension Text {
    /// A delivery report as the mail wrote it, without NUL: its fields are looked up and stored.
    static func clean(_ report: DeliveryReport) -> DeliveryReport {
        var report = report
        report.originalMessageID = report.originalMessageID.map(clean)
        report.recipients = report.recipients.map { recipient in
            var recipient = recipient
            recipient.address = clean(recipient.address)
            recipient.action = clean(recipient.action)
            recipient.status = recipient.status.map(clean)
            recipient.reason = clean(recipient.reason)
            recipient.diagnostic = recipient.diagnostic.map(clean)
            recipient.originalRecipient = recipient.originalRecipient.map(clean)
            return recipient
        }
        return report
    }
}
