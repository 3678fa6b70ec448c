/// Splits a SQL file into its statements, since PostgresNIO speaks only the extended protocol, which
/// takes one statement at a time.
///
/// Semicolons end statements except inside what PostgreSQL's own lexer treats as opaque: '…' and
/// E'…' strings, "…" identifiers, -- and (nested) /* */ comments, and $tag$…$tag$ bodies (functions,
/// DO blocks). Comments are kept with the statement they precede; empty statements are dropped.
enum SQLScript {
    static func statements(in script: String) -> [String] {
        let bytes = Array(script.utf8)
        var statements: [String] = []
        var start = 0
        var index = 0

        func flush(upTo end: Int) {
            let text = String(decoding: bytes[start..<end], as: UTF8.self)
            if !isBlank(text) { statements.append(text.trimmed) }
        }

        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'"):
                // E'…' strings allow backslash escapes; standard strings only double the quote.
                let escapes = index > 0 && (bytes[index - 1] == UInt8(ascii: "E") || bytes[index - 1] == UInt8(ascii: "e"))
                index = skipQuoted(bytes, from: index, quote: byte, backslashEscapes: escapes)
            case UInt8(ascii: "\""):
                index = skipQuoted(bytes, from: index, quote: byte, backslashEscapes: false)
            case UInt8(ascii: "-") where next(bytes, index) == UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "/") where next(bytes, index) == UInt8(ascii: "*"):
                index = skipBlockComment(bytes, from: index)
            case UInt8(ascii: "$"):
                index = skipDollarQuoted(bytes, from: index)
            case UInt8(ascii: ";"):
                flush(upTo: index)
                index += 1
                start = index
            default:
                index += 1
            }
        }
        flush(upTo: bytes.count)
        return statements
    }

    private static func next(_ bytes: [UInt8], _ index: Int) -> UInt8? {
        index + 1 < bytes.count ? bytes[index + 1] : nil
    }

    /// The index after the closing quote (or the end, for an unterminated one, which PostgreSQL will report).
    private static func skipQuoted(_ bytes: [UInt8], from open: Int, quote: UInt8, backslashEscapes: Bool) -> Int {
        var index = open + 1
        while index < bytes.count {
            if backslashEscapes, bytes[index] == UInt8(ascii: "\\") { index += 2; continue }
            if bytes[index] == quote {
                if next(bytes, index) == quote { index += 2; continue }
                return index + 1
            }
            index += 1
        }
        return bytes.count
    }

    private static func skipBlockComment(_ bytes: [UInt8], from open: Int) -> Int {
        var depth = 0
        var index = open
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "/"), next(bytes, index) == UInt8(ascii: "*") {
                depth += 1; index += 2
            } else if bytes[index] == UInt8(ascii: "*"), next(bytes, index) == UInt8(ascii: "/") {
                depth -= 1; index += 2
                if depth == 0 { return index }
            } else {
                index += 1
            }
        }
        return bytes.count
    }

    /// `$$` or `$tag$` opens a body that only the same delimiter closes; a `$` that starts no delimiter
    /// (a positional parameter like `$1`) is ordinary text.
    private static func skipDollarQuoted(_ bytes: [UInt8], from open: Int) -> Int {
        var end = open + 1
        while end < bytes.count, isTagCharacter(bytes[end], first: end == open + 1) { end += 1 }
        guard end < bytes.count, bytes[end] == UInt8(ascii: "$") else { return open + 1 }
        let delimiter = Array(bytes[open...end])
        var index = end + 1
        while index + delimiter.count <= bytes.count {
            if bytes[index] == UInt8(ascii: "$"), Array(bytes[index..<(index + delimiter.count)]) == delimiter {
                return index + delimiter.count
            }
            index += 1
        }
        return bytes.count
    }

    private static func isTagCharacter(_ byte: UInt8, first: Bool) -> Bool {
        let letter = (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || byte >= 0x80
        return letter || (!first && byte >= 0x30 && byte <= 0x39)
    }

    /// True when the text holds nothing but whitespace and comments.
    private static func isBlank(_ text: String) -> Bool {
        var remaining = Substring(text)
        while true {
            remaining = remaining.drop { $0.isWhitespace }
            if remaining.hasPrefix("--") {
                remaining = remaining.drop { $0 != "\n" }
            } else if remaining.hasPrefix("/*"), let close = remaining.range(of: "*/") {
                remaining = remaining[close.upperBound...]
            } else {
                return remaining.isEmpty
            }
        }
    }
}
