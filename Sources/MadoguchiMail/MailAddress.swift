import Foundation

/// A mailbox from an address header: display name and address.
public struct MailAddress: Sendable, Equatable, CustomStringConvertible {
    public var name: String?
    /// As written, but with the domain lower-cased: the form identities are matched in.
    public var address: String

    public init(name: String?, address: String) {
        self.name = name
        self.address = Self.normalize(address)
    }

    public var description: String { name.map { "\($0) <\(address)>" } ?? address }

    /// A person's name as one line: every run of line breaks and other control characters (a name
    /// typed into a form with a newline, an encoded word that decodes to one) becomes one space; nil
    /// when nothing is left. A header can hold no line break, so a name with one could not be
    /// written on any reply to that person.
    public static func oneLineName(_ name: String) -> String? {
        func isBreak(_ scalar: Unicode.Scalar) -> Bool {
            scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
        }
        guard name.unicodeScalars.contains(where: isBreak) else {
            let trimmed = name.trimmingWhitespaceAndNewlines()
            return trimmed.isEmpty ? nil : trimmed
        }
        var scalars = String.UnicodeScalarView()
        var inBreak = false
        for scalar in name.unicodeScalars {
            if isBreak(scalar) {
                if !inBreak { scalars.append(" ") }
                inBreak = true
            } else {
                scalars.append(scalar)
                inBreak = false
            }
        }
        let joined = String(scalars).trimmingWhitespaceAndNewlines()
        return joined.isEmpty ? nil : joined
    }

    /// Lower-cases the domain and keeps the local part as sent (RFC 5321 §2.4 leaves it to the
    /// receiving host). Japanese carrier addresses such as `taro..yamada.@docomo.ne.jp` break RFC 5322
    /// yet are real mailboxes, so nothing is rejected here; quotes around a local part that only needs
    /// them for its dots are removed so both spellings are one identity.
    public static func normalize(_ address: String) -> String {
        let trimmed = address.trimmingWhitespaceAndNewlines()
        guard let at = trimmed.lastIndex(of: "@") else { return trimmed }
        var local = String(trimmed[..<at])
        let domain = trimmed[trimmed.index(after: at)...].lowercased()
        if local.count >= 2, local.hasPrefix("\""), local.hasSuffix("\"") {
            let inner = local.dropFirst().dropLast()
            if !inner.isEmpty, inner.allSatisfy({ $0.isLetter || $0.isNumber || "._-+!#$%&'*/=?^`{|}~".contains($0) }) {
                local = String(inner)
            }
        }
        return local + "@" + domain
    }

    /// Parses an address list (From, To, Cc, Reply-To…): groups, comments, quoted and encoded display
    /// names, route addresses. Whatever cannot be read as a mailbox is skipped, never fatal — except,
    /// when `keepingNamesWithoutAddress` (for From), a display name with no address at all, which
    /// comes back with an empty `address` so the name is not lost.
    public static func list(_ raw: [UInt8], keepingNamesWithoutAddress: Bool = false) -> [MailAddress] {
        let text = HeaderText.bytesToText(raw)
        return splitMailboxes(Array(text.unicodeScalars)).compactMap { mailbox($0, keepingNamesWithoutAddress: keepingNamesWithoutAddress) }
    }

    /// Top-level commas separate mailboxes; a top-level `:` opens a group whose name is dropped and `;`
    /// closes it.
    private static func splitMailboxes(_ scalars: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var chunks: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        // Whether `current` holds an "@", kept as it grows: asking `current.contains("@")` at every
        // colon read the whole chunk again each time (a long address followed by a million colons).
        var currentHasAt = false
        func take(_ scalar: Unicode.Scalar) {
            current.append(scalar)
            if scalar == "@" { currentHasAt = true }
        }
        var inQuote = false, inAngle = false, commentDepth = 0
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            defer { index += 1 }
            if inQuote {
                take(scalar)
                if scalar == "\\", index + 1 < scalars.count { take(scalars[index + 1]); index += 1 }
                else if scalar == "\"" { inQuote = false }
                continue
            }
            if commentDepth > 0 {
                take(scalar)
                if scalar == "(" { commentDepth += 1 } else if scalar == ")" { commentDepth -= 1 }
                continue
            }
            switch scalar {
            case "\"": inQuote = true; take(scalar)
            case "(": commentDepth = 1; take(scalar)
            case "<": inAngle = true; take(scalar)
            case ">": inAngle = false; take(scalar)
            case "," where !inAngle, ";" where !inAngle:
                chunks.append(current); current = []; currentHasAt = false
            case ":" where !inAngle && !currentHasAt:
                current = []  // group name
                currentHasAt = false
            default: take(scalar)
            }
        }
        chunks.append(current)
        return chunks
    }

    private static func mailbox(_ scalars: [Unicode.Scalar], keepingNamesWithoutAddress: Bool) -> MailAddress? {
        let text = String(String.UnicodeScalarView(scalars))
        var comments: [String] = []
        let withoutComments = stripComments(text, into: &comments)
        if let open = withoutComments.lastIndex(of: "<") {
            let afterOpen = withoutComments[withoutComments.index(after: open)...]
            var address = String(afterOpen.prefix { $0 != ">" })
            // Obsolete route: <@relay1,@relay2:user@host>
            if address.hasPrefix("@"), let colon = address.firstIndex(of: ":") { address = String(address[address.index(after: colon)...]) }
            address = withoutWhitespace(address)
            guard !address.isEmpty else { return nil }
            var name = displayName(String(withoutComments[..<open]))
            if name == nil { name = comments.last.flatMap(displayName) }
            return MailAddress(name: name, address: address)
        }
        let address = withoutWhitespace(withoutComments)
        let written = withoutComments.trimmingWhitespaceAndNewlines()
        if keepingNamesWithoutAddress, !address.utf8.contains(UInt8(ascii: "@")), written.contains(where: \.isWhitespace) || written.hasPrefix("\"") {
            // Words or a quoted string and no address: a name (a single word such as MAILER-DAEMON
            // stays an address, as mailers mean it).
            return displayName(written).map { MailAddress(name: $0, address: "") }
        }
        guard address.utf8.contains(UInt8(ascii: "@")) || (!address.isEmpty && !address.utf8.contains(UInt8(ascii: "\""))) else { return nil }
        return MailAddress(name: comments.last.flatMap(displayName), address: address)
    }

    private static func displayName(_ raw: String) -> String? {
        var name = raw.trimmingWhitespaceAndNewlines()
        if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
            name = String(name.dropFirst().dropLast())
            // Foundation's replacing only where there is something to replace: most names have no
            // backslash, and this ran for every one.
            if name.utf8.contains(UInt8(ascii: "\\")) {
                name = name.replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\\\", with: "\\")
            }
        } else if name.utf8.contains(UInt8(ascii: "\"")) {
            name = name.replacingOccurrences(of: "\"", with: "")
        }
        return oneLineName(HeaderText.decodeEncodedWords(in: name))
    }

    /// `text` without its white space and control characters (a NUL in an address cannot be stored,
    /// and no mailer means one); most addresses are printable ASCII and come back as they are. White
    /// space inside a quoted string stays: `"john doe"@example.jp` is not `johndoe@example.jp`,
    /// someone else's mailbox, where our answers went.
    private static func withoutWhitespace(_ text: String) -> String {
        if text.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) { return text }
        var inQuote = false
        var escaped = false
        return text.filter { character in
            defer {
                if inQuote && character == "\\" && !escaped { escaped = true } else {
                    if character == "\"" && !escaped { inQuote.toggle() }
                    escaped = false
                }
            }
            if character.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return false }
            return inQuote || !character.isWhitespace
        }
    }

    private static func stripComments(_ text: String, into comments: inout [String]) -> String {
        var output = "", comment = ""
        var depth = 0, inQuote = false
        var previous: Character = " "
        for character in text {
            defer { previous = character }
            if depth == 0 && character == "\"" && previous != "\\" { inQuote.toggle() }
            if !inQuote && character == "(" { depth += 1; if depth == 1 { continue } }
            if !inQuote && character == ")" && depth > 0 {
                depth -= 1
                if depth == 0 { comments.append(comment); comment = ""; continue }
            }
            if depth > 0 { comment.append(character) } else { output.append(character) }
        }
        return output
    }
}
