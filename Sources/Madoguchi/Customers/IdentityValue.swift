import MadoguchiMail

/// Identities in the one form they are stored and matched in, whoever supplies them (ingest, the order
/// system, a supervisor): email with its ASCII letters lower-cased, the domain as A-labels (full-width
/// ASCII folded), phone in
/// E.164 (Japan the default region), chat as `provider:user id`, an order-system id with full-width
/// ASCII folded, the rest trimmed.
enum IdentityValue {
    /// Characters, as PostgreSQL counts them: the column's limit.
    static let maximumLength = 512

    /// The stored form, or a 422 naming `field` and saying what is wrong.
    static func normalize(_ kind: Customer.Identity.Kind, _ raw: String, field: String) throws -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        func invalid(_ message: String) -> Problem { Problem.validationFailed([.init(pointer: field, message: message)]) }
        guard !value.isEmpty else { throw invalid("is empty") }
        guard !value.contains("\u{0}") else { throw invalid("contains a NUL character") }
        // The column's own check (customer_identities.value) would refuse it too, naming no field.
        guard Text.length(value) <= maximumLength else { throw invalid("is longer than \(maximumLength) characters") }
        switch kind {
        case .email:
            let address = email(try mailbox(in: value, invalid: invalid))
            guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex,
                  !address.contains(where: { $0.isWhitespace })
            else { throw invalid("'\(value)' is not an email address") }
            if let character = misplaced(in: address, at: at) {
                throw invalid("'\(value)' is not an email address: '\(character)' cannot appear there")
            }
            // Its domain's A-labels can be longer than the address as given.
            guard Text.length(address) <= maximumLength else {
                throw invalid("is longer than \(maximumLength) characters with its domain in A-labels (\(Text.length(address)))")
            }
            return address
        case .phone:
            switch PhoneNumber.normalize(value) {
            case .valid(let e164): return e164
            case .invalid(let reason): throw invalid("'\(value)' is not a phone number: \(reason)")
            }
        case .chat:
            guard let colon = value.firstIndex(of: ":"), colon != value.startIndex, value.index(after: colon) != value.endIndex else {
                throw invalid("a chat identity is 'provider:user id', e.g. 'intercom:12345'")
            }
            // The provider as chat ingest names it (lower case): `Intercom:123` added by the order
            // system and `intercom:123` from the chat gateway are one person, not two customers.
            let provider = value[..<colon].lowercased()
            guard isProviderName(provider) else {
                throw invalid("'\(value[..<colon])' is not a provider name like 'intercom' (letters, digits, _ . -)")
            }
            return provider + value[colon...]
        case .line:
            // As the LINE webhook records it. Anything else would be an identity no LINE message
            // ever matches and no reply can be pushed to, accepted without a word.
            guard isLineUserID(value) else {
                let hint = value.lowercased().hasPrefix("line:") ? " without 'line:' ('line:U…' is a chat identity)" : ""
                throw invalid("'\(value)' is not a LINE user id: 'U' and 32 hex digits in lower case, as LINE's webhooks give it\(hint)")
            }
            return value
        case .external:
            // Typed in full-width (an IME left in 全角 mode: `ＣＵＳＴ－０００２`), a member number is the
            // order system's `CUST-0002` still: kept as typed, it made a second customer that no
            // lookup by the order system's own id ever found. Letter case and everything else stay.
            return foldingDashes(Text.foldingFullWidthASCII(value))
        }
    }

    /// What an input method or a word processor gives for "-" (長音 ー and half-width ｰ in 全角 mode,
    /// minus −, hyphens ‐ ‑, dashes ‒ – — ―, small ﹣): typed in a member number, `CUSTー0002` is the
    /// order system's `CUST-0002`. Only in an id otherwise all ASCII: in `コーヒー` the ー is a letter.
    /// Migration 0103 folds the same characters in the ids stored before.
    static let hyphenLikes: Set<Unicode.Scalar> = ["\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2015}", "\u{2212}", "\u{30FC}", "\u{FF70}", "\u{FE63}"]

    static func foldingDashes(_ value: String) -> String {
        let scalars = value.unicodeScalars
        guard scalars.contains(where: hyphenLikes.contains), scalars.allSatisfy({ $0.isASCII || hyphenLikes.contains($0) }) else { return value }
        return String(String.UnicodeScalarView(scalars.map { hyphenLikes.contains($0) ? "-" : $0 }))
    }

    /// A LINE user id as LINE's webhooks give it: `U` and 32 hex digits in lower case.
    static func isLineUserID(_ value: String) -> Bool {
        value.utf8.count == 33 && value.first == "U" && value.utf8.dropFirst().allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The one address in what was given: `Taro <taro@example.jp>` and `<taro@example.jp>` (pasted
    /// from a mail program) are the address inside, as is `taro@example.jp (自宅)` without its
    /// comment; two addresses (`a@x.jp, b@y.jp`) are refused, as
    /// is anything the address reader finds no address in.
    private static func mailbox(in value: String, invalid: (String) -> Problem) throws -> String {
        let folded = Text.foldingFullWidthASCII(value)
        // A bare address needs no reading (and carrier addresses such as `taro..x.@docomo.ne.jp` are
        // kept exactly as written).
        guard folded.contains(where: { "<>,;()".contains($0) }) else { return folded }
        let found = MailAddress.list(Array(folded.utf8)).filter { !$0.address.isEmpty }
        guard found.count <= 1 else {
            throw invalid("holds \(found.count) addresses (\(found.map(\.address).joined(separator: ", "))); give one per identity")
        }
        guard let address = found.first?.address else { throw invalid("'\(value)' is not an email address") }
        return address
    }

    /// A character no address has where it stands (unquoted), which a relay would refuse: the
    /// structural ones of RFC 5322 in the local part, anything but letters, digits, `-` and `.` in a
    /// domain that is not an address literal. Carrier local parts (dots anywhere) pass.
    private static func misplaced(in address: String, at: String.Index) -> Character? {
        let local = address[..<at], domain = address[address.index(after: at)...]
        let quoted = local.count >= 2 && local.hasPrefix("\"") && local.hasSuffix("\"")
        if !quoted, let bad = local.first(where: { "()<>[]:;@\\,\"".contains($0) }) { return bad }
        if domain.hasPrefix("["), domain.hasSuffix("]") { return nil }
        return domain.first { !($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }

    /// For comparing an address someone typed with stored identities: trimmed, and an email in the
    /// form identities are stored in (`email`).
    static func comparable(_ address: String) -> String {
        let trimmed = address.trimmingCharacters(in: .whitespaces)
        guard trimmed.contains("@") || trimmed.contains("＠") else { return trimmed }
        return email(trimmed)
    }

    /// An email address in its stored form, one spelling per mailbox whichever way it reaches us:
    /// `MailAddress.normalize` (the domain lower-cased, needless quotes gone), full-width ASCII typed
    /// with a Japanese input method as ASCII (`ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏ．ｊｐ`), an
    /// internationalized domain as its A-labels (`日本語.jp` is `xn--wgv71a119e.jp`), and the local
    /// part's ASCII letters lower-cased: the form our replies go out to, and the one the customer's
    /// answers come back from. A domain that cannot be converted is only lower-cased. (The parser
    /// keeps addresses as written; this is the identity's form.)
    ///
    /// The local part's case: RFC 5321 (2.4) leaves it to the receiving host, and discourages relying
    /// on it. Every mailbox provider our customers write from (carriers, Gmail, Yahoo!, Outlook)
    /// ignores it, while phone keyboards capitalize the first letter: `Taro@docomo.ne.jp` one day
    /// and `taro@docomo.ne.jp` the next made two customers and split one person's history.
    /// Non-ASCII letters (an SMTPUTF8 local part) stay as written: their case rules are the host's.
    /// A provider's name as ingest and identities write it: 1 to 100 of a–z, 0–9, `_ . -`. Checked
    /// by hand: the pattern's `$` let a final line break through (`intercom\n`), a second provider,
    /// and a second customer for the same person.
    static func isProviderName(_ name: some StringProtocol) -> Bool {
        (1...100).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }

    static func email(_ address: String) -> String {
        let normalized = MailAddress.normalize(Text.foldingFullWidthASCII(address))
        guard let at = normalized.lastIndex(of: "@") else { return normalized }
        let local = asciiLowercased(normalized[..<at])
        var domain = String(normalized[normalized.index(after: at)...])
        // The root's dot (`example.jp.`) names the same domain: kept, it made a second customer.
        if domain.count > 1, domain.hasSuffix("."), !domain.hasSuffix("..") { domain.removeLast() }
        guard !domain.utf8.allSatisfy({ $0 < 0x80 }), let ascii = IDNA.asciiDomain(domain) else { return local + "@" + domain }
        return local + "@" + ascii
    }

    /// `text` with A–Z as a–z and every other character as it was.
    private static func asciiLowercased(_ text: Substring) -> String {
        guard text.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return String(text) }
        return String(decoding: text.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
