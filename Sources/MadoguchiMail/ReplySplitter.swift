import Foundation

/// Separates what the customer just wrote from the quoted history and signature below (or around) it.
///
/// Handles `>` quoting (and the full-width `＞` some Japanese clients use), "On … wrote:" in its
/// English and Japanese forms, Outlook's `-----Original Message-----` and header blocks (`From:` /
/// `差出人:` followed by `Sent:` / `送信日時:`), and signatures after `-- `. Both parts are kept: an
/// agent can always unfold the history.
public enum ReplySplitter {
    public static func split(_ text: String) -> (visible: String, quoted: String) {
        let lines = text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
        }
        var hidden = [Bool](repeating: false, count: lines.count)
        // Trimmed and lowercased once: Foundation's trimming per check and per line dominated
        // parsing time, and lowercasing each line again for every check was a tenth of it.
        let trimmed = lines.map(Self.trim)
        let lowered = trimmed.map { $0.lowercased() }

        var index = 0
        while index < lines.count {
            let line = trimmed[index]
            if isHistoryStart(lowered, at: index) {
                for rest in index..<lines.count { hidden[rest] = true }
                break
            }
            if isQuoteLine(line) {
                hidden[index] = true
            } else if isAttributionLine(trimmed, at: index) {
                // "On … wrote:" may wrap onto a second line; hide both.
                hidden[index] = true
                if !line.hasSuffix(":"), index + 1 < lines.count { hidden[index + 1] = true; index += 1 }
            }
            index += 1
        }
        // Blank lines between hidden blocks belong to them.
        hideSignature(lines, trimmed, &hidden)

        var visible = zip(lines, hidden).filter { !$0.1 }.map(\.0)
        while let last = visible.last, trim(last).isEmpty { visible.removeLast() }
        // Cut once: removing the first line a million times (a body of blank lines) moved the rest each time.
        visible.removeFirst(visible.firstIndex { !trim($0).isEmpty } ?? visible.count)
        let quoted = zip(lines, hidden).filter { $0.1 }.map(\.0).joined(separator: "\n").trimmingWhitespaceAndNewlines()
        if visible.isEmpty { return (text.trimmingWhitespaceAndNewlines(), quoted.isEmpty ? "" : quoted) }
        return (visible.joined(separator: "\n"), quoted)
    }

    /// Spaces and tabs off both ends, without a round trip through NSString.
    static func trim(_ line: String) -> String {
        let scalars = line.unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" && $0 != "\u{3000}" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" && $0 != "\u{3000}" })!
        return String(scalars[first...last])
    }

    static func isQuoteLine(_ line: String) -> Bool {
        line.hasPrefix(">") || line.hasPrefix("＞") || line.hasPrefix("|>")
    }

    /// Separators after which everything is the forwarded or quoted original (no `>` marks).
    /// `lowered`: the lines trimmed and lowercased.
    static func isHistoryStart(_ lowered: [String], at index: Int) -> Bool {
        let lower = lowered[index]
        if lower.hasPrefix("---"), Pattern.originalMessage.matches(lower) { return true }
        if lower.hasPrefix("-") || lower.hasPrefix("_"), Pattern.longRule.matches(lower) { return nextHasHeaderBlock(lowered, after: index) }
        // An Outlook header block: From/差出人 and within three lines Sent/Date/送信日時/To/Subject. The
        // From line names an address, or a date follows: "From: Tokyo / To: Osaka" in a customer's
        // own booking is no header block.
        if isHeaderLine(lower, HeaderNames.from), index > 0 {
            let block = lowered[(index + 1)..<min(lowered.count, index + 5)]
            guard block.contains(where: { isHeaderLine($0, HeaderNames.following) }) else { return false }
            return lower.contains("@") || block.contains { isHeaderLine($0, HeaderNames.dated) }
        }
        return false
    }

    private static func nextHasHeaderBlock(_ lowered: [String], after index: Int) -> Bool {
        lowered[(index + 1)..<min(lowered.count, index + 4)].contains { isHeaderLine($0, HeaderNames.fromAfterRule) }
    }

    /// `lower` starts with one of `prefixes` (a field name and its colon), once Outlook's rich-text
    /// stars are gone: its replies come through as "*From:* …". (Foundation's replacingOccurrences
    /// on every line was a fifth of all parsing time.)
    private static func isHeaderLine(_ lower: String, _ prefixes: [String]) -> Bool {
        guard lower.utf8.contains(UInt8(ascii: "*")) else { return prefixes.contains { lower.hasPrefix($0) } }
        var plain = lower
        plain.removeAll { $0 == "*" }
        return prefixes.contains { plain.hasPrefix($0) }
    }

    /// The field names of a quoted header block, lowercased, each with the colons it may carry.
    private enum HeaderNames {
        static let from = withColons(["from", "差出人", "送信者", "差出人 "])
        static let following = withColons(["sent", "date", "送信日時", "日時", "送信日", "to", "宛先", "subject", "件名"])
        static let fromAfterRule = withColons(["from", "差出人", "送信者"])
        static let dated = withColons(["sent", "date", "送信日時", "日時", "送信日"])

        static func withColons(_ names: [String]) -> [String] {
            names.flatMap { [$0 + ":", $0 + "：", $0 + " :"] }
        }
    }

    /// "On Tue, 1 Jan 2024, Taro <t@x> wrote:", "2024年1月1日(月) 10:00 山田 <t@x>:", "…さんは書きました:".
    static func isAttributionLine(_ lines: [String], at index: Int) -> Bool {
        let line = lines[index]
        if ["On ", "Am ", "Le ", "El ", "Il ", "Op "].contains(where: { line.hasPrefix($0) }) {
            let joined = index + 1 < lines.count ? line + " " + lines[index + 1] : line
            if Pattern.onWrote.matches(line) || Pattern.onWrote.matches(joined) { return true }
        }
        guard line.hasSuffix(":") || line.hasSuffix("：") else { return false }
        if Pattern.wroteSuffix.matches(line) { return true }
        // A Japanese date line ending with ':' directly above quoted lines.
        let followedByQuote = lines[(index + 1)..<min(lines.count, index + 4)].contains(where: isQuoteLine)
        return followedByQuote && Pattern.japaneseDate.matches(line)
    }

    /// A signature is what follows, near the end, `-- ` (RFC 3676 §4.3), a rule line (`-----`, `_____`,
    /// `━━━━━`, how Japanese business signatures are framed), a "-Name" line, or a bare "Sent from my
    /// iPhone" (not a sentence that happens to start that way).
    private static func hideSignature(_ lines: [String], _ trimmed: [String], _ hidden: inout [Bool]) {
        let visibleIndices = hidden.indices.filter { !hidden[$0] }
        guard let lastVisible = visibleIndices.last else { return }
        // The earliest delimiter near the end wins: "-Taro" above a list footer hides both.
        var start: Int?
        for index in visibleIndices.reversed() where lastVisible - index <= 12 {
            let raw = lines[index]
            let line = trimmed[index]
            let isDelimiter = raw == "-- " || line == "--" || line == "__"
                || line.first.map(Self.ruleCharacters.contains) == true && Pattern.rule.matches(line)
                || line.hasPrefix("-") && Pattern.dashName.matches(line) && !isListItem(trimmed, besides: index)
                || line.hasPrefix("Sent from my") && Pattern.sentFromMy.matches(line)
                || Self.appSignatures.contains(where: line.hasPrefix)
            if isDelimiter { start = index }
        }
        guard let start, start > (visibleIndices.first ?? 0) else { return }
        for rest in start..<lines.count where !hidden[rest] { hidden[rest] = true }
    }

    /// Whether the line at `index` is one of a list of dash items ("-Refund" above "-Replacement
    /// cable"): a line beside it starts with a dash too. A "-Taro" signature stands alone.
    private static func isListItem(_ trimmed: [String], besides index: Int) -> Bool {
        let neighbours = [index - 1, index + 1].filter { trimmed.indices.contains($0) }.map { trimmed[$0] }
        return neighbours.contains { $0.hasPrefix("-") && !$0.hasPrefix("--") }
    }

    /// What a rule line (`Pattern.rule`) is drawn with: a line starting otherwise is not one.
    private static let ruleCharacters: Set<Character> = ["-", "_", "=", "━", "─", "－", "＿"]
    /// The lines mail apps put under what was written.
    private static let appSignatures = ["Sent from Mail for", "Get Outlook for", "iPhoneから送信", "iPadから送信", "Android版Outlookから送信"]
}

/// The splitter's patterns, compiled once: compiling per line made parsing crawl.
private enum Pattern {
    static let originalMessage = regex(#"^-{3,}\s*(original message|forwarded message|元のメッセージ|転送メッセージ|オリジナルメッセージ)\s*-{3,}$"#)
    static let longRule = regex(#"^[-_]{20,}$"#)
    static let onWrote = regex(#"^(On|Am|Le|El|Il|Op)\s.+(wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:$"#)
    static let wroteSuffix = regex(#"(書きました|書いています|のメッセージ|wrote)\s*[:：]$"#)
    static let japaneseDate = regex(#"\d{4}[年/.-]\s*\d{1,2}[月/.-]\s*\d{1,2}"#)
    static let rule = regex(#"^[-_=━─－＿]{5,}$"#)
    static let dashName = regex(#"^-[A-Za-z][\w.]*(\s[\w.]+){0,2}$"#)
    static let sentFromMy = regex(#"^Sent from my(\s+[\w-]+){1,4}\.?$"#)

    static func regex(_ pattern: String) -> NSRegularExpression { try! NSRegularExpression(pattern: pattern) }
}

extension NSRegularExpression {
    func matches(_ text: String) -> Bool {
        firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}
