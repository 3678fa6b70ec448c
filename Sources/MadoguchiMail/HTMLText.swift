import Foundation

/// HTML rendered to readable plain text for HTML-only mail: block elements become line breaks,
/// scripts, styles and the head are dropped, entities decoded. Not a browser, and it need not be.
public enum HTMLText {
    public static func render(_ html: String) -> String {
        var output = ""
        var index = html.startIndex
        var skipUntil: String?
        while index < html.endIndex {
            let character = html[index]
            if character == "<" {
                guard let close = html[index...].firstIndex(of: ">") else { break }
                let tag = html[html.index(after: index)..<close].lowercased()
                let name = String(tag.prefix { $0.isLetter || $0.isNumber || $0 == "/" || $0 == "!" })
                index = html.index(after: close)
                if let waiting = skipUntil {
                    if name == "/" + waiting { skipUntil = nil }
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
