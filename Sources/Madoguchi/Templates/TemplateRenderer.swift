import Foundation

/// Fills `{{name}}` variables. A variable it does not know, or knows but has no value for, is an
/// error naming it: a customer must never receive "お世話になっております、様。". A variable may
/// name what stands in for a missing value, `{{customer.name|お客}}`: most carrier mail comes with
/// an address and no name, and a confirmation that needs one would otherwise go to nobody.
struct TemplateRenderer: Sendable {
    struct Failure: Error, Equatable {
        var unknown: [String]
        var unfilled: [String]
    }

    /// Known variables and their values; nil for a known variable with no value (a customer with no name).
    var values: [String: String?]
    /// Namespaces whose fields come from the caller (`order.*`): any field is known, filled or not.
    static let openNamespaces: Set<String> = ["order"]

    /// Whether `name` is in one of `openNamespaces`.
    private static func isOpen(_ name: String) -> Bool {
        openNamespaces.contains(name.split(separator: ".").first.map(String.init) ?? "")
    }

    /// Any `{{…}}` on one line is a variable, whatever its name: one no template knows
    /// (`{{お名前}}`, `{{customer name}}`) is an unknown variable, refused, not text left as it is.
    /// `{{`, 1 to 100 UTF-16 units that are none of `{`, `}` or a line break, `}}`: the markers in
    /// `text` (full-width ASCII folded first: `｛｛ｃｕｓｔｏｍｅｒ．ｎａｍｅ｝｝`, typed with a Japanese
    /// input method, is `{{customer.name}}`; folding keeps every UTF-16 offset), as the whole
    /// marker's range and its inside's. Scanned by hand on UTF-16: Foundation's regular expressions
    /// here cut a match short by one unit when a combining or joining character follows its `}}`
    /// (`{{customer.name}}\u{301}`), and the marker was rendered with a `}` left behind.
    private static func markerRanges(in folded: String) -> [(whole: NSRange, inside: NSRange)] {
        let units = Array(folded.utf16)
        let open = UInt16(UInt8(ascii: "{")), close = UInt16(UInt8(ascii: "}")), newline = UInt16(UInt8(ascii: "\n"))
        var found: [(NSRange, NSRange)] = []
        var index = 0
        while index + 1 < units.count {
            guard units[index] == open, units[index + 1] == open else { index += 1; continue }
            var end = index + 2
            while end < units.count, end - (index + 2) < 100, units[end] != open, units[end] != close, units[end] != newline { end += 1 }
            if end > index + 2, end + 1 < units.count, units[end] == close, units[end + 1] == close {
                found.append((NSRange(location: index, length: end + 2 - index), NSRange(location: index + 2, length: end - index - 2)))
                index = end + 2
            } else {
                index += 1
            }
        }
        return found
    }

    /// `{{ name }}` matches in `text`, each with its name (trimmed, full-width ASCII folded), the
    /// stand-in after a `|` if any (as written, trimmed; nil when blank), and where the whole marker
    /// is, as UTF-16 offsets that hold in `text` as written. Read by UTF-16 range: a marker can end
    /// inside a Swift Character (a `}` and a combining mark after it), where no String range can be
    /// made. An empty name (`{{ }}`, `{{|お客}}`) is a marker too, of a
    /// variable no ticket fills.
    private static func markers(in text: String) -> [(name: String, fallback: String?, range: NSRange)] {
        let folded = Text.foldingFullWidthASCII(text)
        let foldedUnits = Array(folded.utf16), writtenUnits = Array(text.utf16)
        return markerRanges(in: folded).map { whole, inside in
            let parts = utf16Text(foldedUnits, inside).split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            let trimmed = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            // The stand-in as typed (not folded: ｢お客｣ stays full-width), after the first | or ｜.
            let typed = utf16Text(writtenUnits, inside)
            let bar = typed.firstIndex { $0 == "|" || $0 == "｜" }
            let fallback = parts.count == 2 ? bar.map { String(typed[typed.index(after: $0)...]).trimmingCharacters(in: .whitespaces) } : nil
            return (trimmed, fallback.flatMap { blank($0) ? nil : $0 }, whole)
        }
    }

    /// The text of UTF-16 units `range`. (Foundation's NSString here rounds a range that ends
    /// inside a Character to the Character, which left a `}` behind.)
    private static func utf16Text(_ units: [UInt16], _ range: NSRange) -> String {
        String(decoding: units[range.location..<range.location + range.length], as: UTF16.self)
    }

    /// `text` with each of `replacements` (UTF-16 ranges, in order, not overlapping) put in.
    private static func replacing(_ text: String, _ replacements: [(range: NSRange, with: String)]) -> String {
        var units = Array(text.utf16)
        for (range, value) in replacements.reversed() {
            units.replaceSubrange(range.location..<range.location + range.length, with: Array(value.utf16))
        }
        return String(decoding: units, as: UTF16.self)
    }

    /// The variable names in `text`, in order of first use.
    static func variables(in text: String) -> [String] {
        var seen = Set<String>()
        return markers(in: text).map(\.name).filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    /// Where `name` is first used in `text`: its line and column (from 1, columns in characters), for
    /// an agent told a variable has no value to find it in a long template.
    static func firstUse(of name: String, in text: String) -> (line: Int, column: Int)? {
        guard let marker = markers(in: text).first(where: { $0.name == name }) else { return nil }
        // Any line end counts: "\r\n" is one Character, not "\n" (a template saved with CRLF had
        // every finding on line 1).
        let before = utf16Text(Array(text.utf16), NSRange(location: 0, length: marker.range.location))
        let lineStart = before.lastIndex(where: \.isNewline).map { before.index(after: $0) } ?? before.startIndex
        return (before.count(where: \.isNewline) + 1, before[lineStart...].count + 1)
    }

    /// The variables every ticket gives a value for (`TemplateStore.values`), beside `order.*`.
    static let knownVariables: Set<String> = ["customer.name", "ticket.number", "ticket.subject", "agent.name"]

    /// What a template's text cannot be saved with, each as a message: a variable no ticket fills
    /// (`{{お名前}}`, `{{customer.email}}`), found only when an agent renders it otherwise, and a
    /// `{{` never closed on its line (`{{customer.name 様`), which no render replaces, so the
    /// customer would read it.
    static func problems(in text: String) -> [String] {
        var found: [String] = []
        if markers(in: text).contains(where: { $0.name.isEmpty }) {
            found.append("has an empty {{ }}, which names no variable; write one, as {{customer.name}}, or remove the braces")
        }
        let unknown = variables(in: text).filter { !knownVariables.contains($0) && !isOpen($0) }
        if !unknown.isEmpty {
            found.append("uses \(unknown.map { "{{\($0)}}" }.joined(separator: ", ")), which no ticket fills; the variables are "
                         + knownVariables.sorted().map { "{{\($0)}}" }.joined(separator: ", ") + " and {{order.FIELD}}")
        }
        let emptyStandIns = markers(in: text).filter { $0.fallback == nil && (text as NSString).substring(with: $0.range).contains(where: { $0 == "|" || $0 == "｜" }) }
        if let first = emptyStandIns.first {
            found.append("gives {{\(first.name)}} an empty stand-in after '|'; write the words to use when it has no value, as {{\(first.name)|お客}}")
        }
        let folded = Text.foldingFullWidthASCII(text)
        let closed = replacing(folded, markerRanges(in: folded).map { ($0.whole, "") })
        if let line = closed.split(separator: "\n").first(where: { $0.contains("{{") }) {
            found.append("has a '{{' that is not closed with '}}' on its line: \(line.trimmingCharacters(in: .whitespaces).prefix(60))")
        }
        return found
    }

    /// Whether a value shows nothing: spaces, line breaks or invisible format characters (a zero-width
    /// space) only. "山田" with one of those around it is filled; "\u{200B}" alone renders "様。".
    static func blank(_ value: String) -> Bool {
        value.unicodeScalars.allSatisfy { $0.properties.isWhitespace || $0.properties.generalCategory == .format }
    }

    func render(_ texts: [String]) throws(Failure) -> [String] {
        // Each text's markers, found once: checked first, then replaced.
        let markers = texts.map(Self.markers(in:))
        var unknown: [String] = []
        var unfilled: [String] = []
        for marker in markers.joined() where !unknown.contains(marker.name) && !unfilled.contains(marker.name) {
            switch values[marker.name] {
            case .some(.some(let value)) where !Self.blank(value):
                continue
            case .some:
                if marker.fallback == nil { unfilled.append(marker.name) }
            case .none:
                if !Self.isOpen(marker.name) { unknown.append(marker.name) } else if marker.fallback == nil { unfilled.append(marker.name) }
            }
        }
        guard unknown.isEmpty, unfilled.isEmpty else { throw Failure(unknown: unknown, unfilled: unfilled) }
        return zip(texts, markers).map { text, markers in
            // By UTF-16 range, as the markers were found (see `markers`).
            Self.replacing(text, markers.compactMap { marker in
                ((values[marker.name] ?? nil).flatMap { Self.blank($0) ? nil : $0 } ?? marker.fallback).map { (marker.range, $0) }
            })
        }
    }
}
