import Foundation

/// HTML rendered to readable plain text for HTML-only mail: block elements become line breaks,
/// scripts, styles and the head are dropped, entities decoded. Not a browser, and it need not be;
/// but what a browser would show of the customer's words is never dropped: a `<` that opens no tag
/// ("数量<5個") is text, as is one with no `>` after it, and a head left open ends at `<body>`.
public enum HTMLText {
    public static func render(_ html: String) -> String {
        var output = ""
        var index = html.startIndex
        var skipUntil: String?
        // Past the last '>', no '<' can open a tag: each is text, found without a search.
        let lastClose = html.lastIndex(of: ">")
        while index < html.endIndex {
            if let waiting = skipUntil, waiting == "script" || waiting == "style" {
                // Raw text, as in a browser: nothing inside is a tag until the end tag. Read as tags,
                // `if (x<y)` swallowed the `</script>` and with it the rest of the mail.
                guard let end = html.range(of: "</" + waiting, options: .caseInsensitive, range: index..<html.endIndex) else { break }
                index = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                skipUntil = nil
                continue
            }
            let character = html[index]
            if character == "<", opensTag(html, at: index), let lastClose, index < lastClose,
               let close = html[index...].firstIndex(of: ">") {
                let tag = html[html.index(after: index)..<close].lowercased()
                let name = String(tag.prefix { $0.isLetter || $0.isNumber || $0 == "/" || $0 == "!" })
                index = html.index(after: close)
                if let waiting = skipUntil {
                    // A head (or its title) never closed ends where the body begins, as in a browser:
                    // `<head><meta charset=utf-8><body><p>返品希望です` kept nothing of the text.
                    if name == "/" + waiting || ((waiting == "head" || waiting == "title") && name == "body") { skipUntil = nil }
                    continue
                }
                switch name {
                case "script", "style", "head", "title": skipUntil = name
                case "br", "br/": output += "\n"
                case "p", "/p", "div", "/div", "tr", "/tr", "h1", "h2", "h3", "h4", "h5", "h6", "/h1", "/h2", "/h3", "/h4", "/h5", "/h6",
                     "ul", "/ul", "ol", "/ol", "table", "/table", "blockquote", "/blockquote", "hr", "center", "/center":
                    if !output.hasSuffix("\n") { output += "\n" }
                case "li": output += output.hasSuffix("\n") ? "- " : "\n- "
                case "td", "th": output += "\t"
                default: break
                }
                continue
            }
            if skipUntil == nil {
                if character == "&", let (decoded, next) = entity(in: html, at: index) {
                    output += decoded
                    index = next
                    continue
                }
                output.append(character.isNewline ? " " : character)
            }
            index = html.index(after: index)
        }
        // Collapse the white space HTML does not show.
        let lines = output.components(separatedBy: "\n").map { line in
            line.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        }
        var collapsed: [String] = []
        for line in lines where !(line.isEmpty && collapsed.last?.isEmpty == true) { collapsed.append(line) }
        return collapsed.joined(separator: "\n").trimmingWhitespaceAndNewlines()
    }

    /// Whether the `<` at `index` opens a tag, a comment or a declaration (followed by an ASCII
    /// letter, `/`, `!` or `?`), as HTML's tokenizer decides; otherwise it is text.
    private static func opensTag(_ html: String, at index: String.Index) -> Bool {
        let next = html.index(after: index)
        guard next < html.endIndex else { return false }
        let character = html[next]
        return (character.isASCII && character.isLetter) || character == "/" || character == "!" || character == "?"
    }

    private static let named: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "copy": "©", "reg": "®",
        "yen": "¥", "hellip": "…", "mdash": "—", "ndash": "–", "laquo": "«", "raquo": "»", "middot": "·",
    ]

    private static func entity(in html: String, at start: String.Index) -> (String, String.Index)? {
        guard let semicolon = html[start...].prefix(12).firstIndex(of: ";") else { return nil }
        let body = html[html.index(after: start)..<semicolon]
        let next = html.index(after: semicolon)
        if body.hasPrefix("#x") || body.hasPrefix("#X"), let value = UInt32(body.dropFirst(2), radix: 16), let scalar = Unicode.Scalar(value) {
            return (String(Character(scalar)), next)
        }
        if body.hasPrefix("#"), let value = UInt32(body.dropFirst()), let scalar = Unicode.Scalar(value) {
            return (String(Character(scalar)), next)
        }
        if let text = named[body.lowercased()] { return (text, next) }
        return nil
    }

    /// `<meta charset=…>` or `<meta http-equiv … content="…; charset=…">` in the first few KB.
    static func declaredCharset(_ bytes: [UInt8]) -> String? {
        let head = String(decoding: bytes.prefix(4096), as: UTF8.self).lowercased()
        guard let range = head.range(of: "charset=") else { return nil }
        let value = head[range.upperBound...].drop { $0 == "\"" || $0 == "'" }.prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
        return value.isEmpty ? nil : String(value)
    }
}
