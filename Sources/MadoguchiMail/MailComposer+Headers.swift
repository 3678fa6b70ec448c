import Foundation

/// Header fields written as RFC 5322 lines (without their CRLF): folded at spaces to 78 characters
/// where the words allow and never past 998, and text that is not plain ASCII in RFC 2047 encoded
/// words of the mail's charset. Values reaching here have been validated: no CR, LF or NUL.
struct HeaderWriter {
    let charset: TextCharset
    private(set) var lines: [String] = []

    init(charset: TextCharset) { self.charset = charset }

    mutating func add(_ name: String, _ tokens: [String]) {
        lines.append(Self.fold(name, tokens))
    }

    /// Subject-like text, decoding to exactly `text`.
    mutating func addText(_ name: String, _ text: String) {
        add(name, unstructuredTokens(text))
    }

    mutating func addAddresses(_ name: String, _ addresses: [MailAddress]) {
        var tokens: [String] = []
        for (index, address) in addresses.enumerated() {
            var mailbox = mailboxTokens(address)
            if index < addresses.count - 1 { mailbox[mailbox.count - 1] += "," }
            tokens += mailbox
        }
        add(name, tokens)
    }

    /// Joins the tokens with single spaces, breaking the line before a token that would pass 78
    /// characters, or 76 in a field with encoded words (RFC 2047 §2 limits each line holding one to
    /// 76). The first token stays beside the field name, and a token is never split, so the callers
    /// keep tokens short (encoded words, message ids, addresses).
    static func fold(_ name: String, _ tokens: [String]) -> String {
        let limit = tokens.contains(where: Self.isEncodedWord) ? 76 : 78
        var output = name + ":"
        var lineLength = output.utf8.count
        for (index, token) in tokens.enumerated() {
            let length = token.utf8.count
            if index > 0, lineLength + 1 + length > limit {
                output += "\r\n"
                lineLength = 0
            }
            output += " " + token
            lineLength += 1 + length
        }
        return output
    }

    /// A token written as an RFC 2047 encoded word (a mailbox's name may end in the comma that
    /// separates it from the next mailbox).
    static func isEncodedWord(_ token: String) -> Bool {
        token.hasPrefix("=?") && (token.hasSuffix("?=") || token.hasSuffix("?=,"))
    }

    // MARK: Unstructured text

    /// Plain ASCII words stay readable; each run of other words becomes encoded words. Decoding drops
    /// the white space between two encoded words and keeps it next to plain text (RFC 2047 §6.2), which
    /// gives back exactly the spaces written.
    private func unstructuredTokens(_ text: String) -> [String] {
        var tokens: [String] = []
        var pending: [String] = []
        func flush() {
            guard !pending.isEmpty else { return }
            tokens += charset.encodedWords(pending.joined(separator: " "))
            pending = []
        }
        for word in Self.words(text) {
            // The spaces a word carries in front go on its line too: a long run of them (folding
            // never splits a token) goes inside encoded words instead.
            if Self.isPlain(word.drop { $0 == " " }) && word.utf8.count <= 900 {
                flush()
                tokens.append(word)
            } else {
                pending.append(word)
            }
        }
        flush()
        return tokens
    }

    /// `text` split at single spaces, extra spaces kept at the front of the next word, so that joining
    /// with one space gives `text` back and no folded line is only white space.
    static func words(_ text: String) -> [String] {
        guard !text.isEmpty else { return [] }
        let pieces = text.split(separator: " ", omittingEmptySubsequences: false)
        var words: [String] = []
        var spaces = ""
        for (index, piece) in pieces.enumerated() {
            if !piece.isEmpty {
                words.append(spaces + piece)
                spaces = ""
            } else if index < pieces.count - 1 {
                spaces += " "
            } else if words.isEmpty {
                words.append(spaces)
            } else {
                words[words.count - 1] += " " + spaces
            }
        }
        return words
    }

    /// Printable ASCII that no reader would take for an encoded word, short enough for one line.
    private static func isPlain<Text: StringProtocol>(_ word: Text) -> Bool {
        !word.isEmpty && word.utf8.count <= 900 && word.utf8.allSatisfy { (0x21...0x7E).contains($0) } && !word.contains("=?")
    }

    // MARK: Addresses

    /// `Name <address>`, or the bare address. The address goes as it is: carrier addresses such as
    /// `taro..yamada.@docomo.ne.jp` are not RFC 5322 but are delivered, and non-ASCII ones go raw under
    /// SMTPUTF8 (RFC 6532).
    private func mailboxTokens(_ mailbox: MailAddress) -> [String] {
        guard let name = mailbox.name, !name.isEmpty else { return [mailbox.address] }
        return phraseTokens(name) + ["<" + mailbox.address + ">"]
    }

    /// A display name: as atoms when it can be, quoted when it holds specials, encoded words when it
    /// is not plain ASCII (RFC 2047 §5(3) allows them in a phrase, never inside quotes).
    private func phraseTokens(_ name: String) -> [String] {
        let printable = name.utf8.allSatisfy { (0x20...0x7E).contains($0) }
        guard printable, !name.contains("=?"), name.utf8.count <= 900, name == name.trimmingWhitespace() else {
            return charset.encodedWords(name)
        }
        if name.utf8.allSatisfy({ Self.isAtext($0) || $0 == 0x20 }), !name.contains("  ") { return [name] }
        let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        // Escaping can double it, and a quoted string is one token that folding cannot split.
        guard escaped.utf8.count <= 900 else { return charset.encodedWords(name) }
        return ["\"" + escaped + "\""]
    }

    /// RFC 5322 §3.2.3 atext.
    private static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
    }

    // MARK: Dates

    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// RFC 5322 §3.3 in UTC: `Tue, 01 Dec 2026 11:15:00 +0000`. Written by hand: no locale can
    /// translate the day or month names.
    static func date(_ date: Date) -> String {
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let parts = calendar.dateComponents([.weekday, .day, .month, .year, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        return "\(days[(parts.weekday ?? 1) - 1]), \(two(parts.day)) \(months[(parts.month ?? 1) - 1]) \(parts.year ?? 1970) "
            + "\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) +0000"
    }
}

/// RFC 2047 B-encoded words.
enum EncodedWordWriter {
    /// RFC 2047 allows 75 characters; 66 lets one word follow `Reply-To: ` within 78 on the first line.
    static let maximumLength = 66

    static func word(charset: String, bytes: [UInt8]) -> String {
        "=?\(charset)?B?\(Data(bytes).base64EncodedString())?="
    }

    /// How many bytes one word of at most `maximumLength` characters can carry.
    static func capacity(charset: String, maximumLength: Int) -> Int {
        let base64Length = maximumLength - "=?\(charset)?B??=".count
        return base64Length / 4 * 3
    }

    /// UTF-8 words, each holding whole scalars so that every word decodes on its own.
    static func utf8(_ text: String, maximumLength: Int = maximumLength) -> [String] {
        let capacity = capacity(charset: "UTF-8", maximumLength: maximumLength)
        var words: [[UInt8]] = []
        var current: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if !current.isEmpty, current.count + bytes.count > capacity {
                words.append(current)
                current = []
            }
            current += bytes
        }
        if !current.isEmpty { words.append(current) }
        return words.map { word(charset: "UTF-8", bytes: $0) }
    }
}
