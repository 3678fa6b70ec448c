import Foundation

/// A subject reduced to what stays the same along a thread: reply and forward prefixes in the
/// languages our customers' phones and clients use (`Re:`, `RE:`, `Fwd:`, `転送:`, `返信:`, `AW:` …,
/// full-width colons included), our `[#1234]` ticket token, case and width differences.
enum ThreadSubject {
    struct Reduced: Equatable {
        var key: String
        /// The subject carried a reply or forward prefix: the customer is answering something.
        var isReply: Bool
    }

    /// Full-width letters and ＞ too: `reduce` folds widths first, `withoutPrefixes` reads the
    /// subject as written.
    private static let prefix = try! NSRegularExpression(
        pattern: #"^\s*(re|fw|fwd|aw|wg|sv|vs|tr|rv|res|antw|odp|返信|転送|回复|答复|轉寄|回覆|ｒｅ|ｆｗ|ｆｗｄ)\s*(\[\d+\]|\(\d+\)|\*\d+)?\s*[:：>＞]\s*"#,
        options: [.caseInsensitive])
    private static let token = try! NSRegularExpression(pattern: #"\[#\d+\]"#)

    static func reduce(_ subject: String?) -> Reduced {
        var text = (subject ?? "").precomposedStringWithCompatibilityMapping
        text = token.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: " ")
        var isReply = false
        for _ in 0..<20 {
            let range = NSRange(text.startIndex..., in: text)
            guard let match = prefix.firstMatch(in: text, range: range), let found = Range(match.range, in: text) else { break }
            text.removeSubrange(found)
            isReply = true
        }
        let key = text.lowercased().split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        return Reduced(key: Text.prefix(key, 2000), isReply: isReply)
    }

    /// A subject as our reply repeats it: without the reply and forward prefixes in front ("Re: RE:",
    /// "Ｒｅ：", "返信:", "Fwd:") and without ticket tokens (another ticket's would thread the
    /// customer's answer there), the customer's words otherwise as written. "Re: Re: 前回の件" read as
    /// a desk that does not know what it is answering.
    static func withoutPrefixes(_ subject: String) -> String {
        var text = token.stringByReplacingMatches(in: subject, range: NSRange(subject.startIndex..., in: subject), withTemplate: "")
        for _ in 0..<20 {
            guard let match = prefix.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                  let found = Range(match.range, in: text) else { break }
            text.removeSubrange(found)
        }
        return text.split(whereSeparator: { $0 == " " }).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }

    /// The ticket number in an `[#1234]` token in the subject.
    static func ticketNumber(in subject: String?) -> Int64? {
        guard let subject else { return nil }
        let range = NSRange(subject.startIndex..., in: subject)
        guard let match = token.firstMatch(in: subject, range: range), let found = Range(match.range, in: subject) else { return nil }
        return Int64(subject[found].dropFirst(2).dropLast())
    }

    /// The ticket number in a plus address we hand out in Reply-To (`support+t1234@example.com`).
    static func ticketNumber(inAddress address: String) -> Int64? {
        guard let at = address.lastIndex(of: "@"), let plus = address[..<at].lastIndex(of: "+") else { return nil }
        let tag = address[address.index(after: plus)..<at]
        guard tag.first == "t" || tag.first == "T" else { return nil }
        return Int64(tag.dropFirst())
    }

    /// Whether `address` is `own` with a `+tag` (`support+t1234@shop.example` of
    /// `support@shop.example`), compared without case; any address when `own` is unknown.
    static func isPlusAddress(_ address: String, of own: String?) -> Bool {
        guard let own else { return true }
        guard let at = address.lastIndex(of: "@"), let ownAt = own.lastIndex(of: "@"),
              let plus = address[..<at].lastIndex(of: "+") else { return false }
        return address[..<plus].lowercased() == own[..<ownAt].lowercased()
            && address[address.index(after: at)...].lowercased() == own[own.index(after: ownAt)...].lowercased()
    }

    /// Mobile carriers' mail domains: their handsets drop In-Reply-To and References, so the subject is
    /// the only thread they keep.
    static let carrierDomains: Set = [
        "docomo.ne.jp", "ezweb.ne.jp", "au.com", "softbank.ne.jp", "i.softbank.jp", "disney.ne.jp", "ymobile.ne.jp",
        "y-mobile.ne.jp", "emobile.ne.jp", "willcom.com", "pdx.ne.jp", "rakumail.jp", "uqmobile.jp", "mineo.jp",
    ]

    static func isCarrierAddress(_ address: String) -> Bool {
        guard let at = address.lastIndex(of: "@") else { return false }
        let domain = address[address.index(after: at)...].lowercased()
        return carrierDomains.contains { domain == $0 || domain.hasSuffix("." + $0) }
    }
}
