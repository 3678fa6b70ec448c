import Foundation

/// Separates what the customer just wrote from the quoted history and signature below (or around) it.
///
/// Handles `>` quoting (and the full-width `＞` some Japanese clients use), "On … wrote:" in its
/// English and Japanese forms, Outlook's `-----Original Message-----` and header blocks (`From:` /
/// `差出人:` followed by `Sent:` / `送信日時:`), and signatures after `-- `. Both parts are kept: an
/// agent can always unfold the history.
public enum ReplySplitter {
    public static func split(_ text: String) -> (visible: String, quoted: String) {
        let lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        var hidden = [Bool](repeating: false, count: lines.count)

        var index = 0
        while index < lines.count {
            let line = lines[index].trimmingCharacters(in: .whitespaces)
            if isHistoryStart(lines, at: index) {
                for rest in index..<lines.count { hidden[rest] = true }
                break
            }
            if isQuoteLine(line) {
                hidden[index] = true
            } else if isAttributionLine(lines, at: index) {
                // "On … wrote:" may wrap onto a second line; hide both.
                hidden[index] = true
                if !line.hasSuffix(":"), index + 1 < lines.count { hidden[index + 1] = true; index += 1 }
            }
            index += 1
        }
        // Blank lines between hidden blocks belong to them.
        hideSignature(lines, &hidden)

        var visible = zip(lines, hidden).filter { !$0.1 }.map(\.0)
        while visible.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { visible.removeLast() }
        while visible.first?.trimmingCharacters(in: .whitespaces).isEmpty == true { visible.removeFirst() }
        let quoted = zip(lines, hidden).filter { $0.1 }.map(\.0).joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if visible.isEmpty { return (text.trimmingCharacters(in: .whitespacesAndNewlines), quoted.isEmpty ? "" : quoted) }
        return (visible.joined(separator: "\n"), quoted)
    }

    static func isQuoteLine(_ line: String) -> Bool {
        line.hasPrefix(">") || line.hasPrefix("＞") || line.hasPrefix("|>")
    }

    /// Separators after which everything is the forwarded or quoted original (no `>` marks).
    static func isHistoryStart(_ lines: [String], at index: Int) -> Bool {
        let line = lines[index].trimmingCharacters(in: .whitespaces)
        let lower = line.lowercased()
        if lower.range(of: #"^-{3,}\s*(original message|forwarded message|元のメッセージ|転送メッセージ|オリジナルメッセージ)\s*-{3,}$"#,
                       options: .regularExpression) != nil { return true }
        if lower.range(of: #"^[-_]{20,}$"#, options: .regularExpression) != nil { return nextHasHeaderBlock(lines, after: index) }
        // An Outlook header block: From/差出人 and within three lines Sent/Date/送信日時.
        if isHeaderLine(line, names: ["from", "差出人", "送信者", "差出人 "]) {
            return lines[(index + 1)..<min(lines.count, index + 5)].contains {
                isHeaderLine($0.trimmingCharacters(in: .whitespaces), names: ["sent", "date", "送信日時", "日時", "送信日", "to", "宛先", "subject", "件名"])
            } && index > 0
        }
        return false
    }

    private static func nextHasHeaderBlock(_ lines: [String], after index: Int) -> Bool {
        lines[(index + 1)..<min(lines.count, index + 4)].contains {
            isHeaderLine($0.trimmingCharacters(in: .whitespaces), names: ["from", "差出人", "送信者"])
        }
    }

    private static func isHeaderLine(_ line: String, names: [String]) -> Bool {
        // Outlook's rich-text replies come through as "*From:* …".
        let lower = line.lowercased().replacingOccurrences(of: "*", with: "")
        return names.contains { lower.hasPrefix($0 + ":") || lower.hasPrefix($0 + "：") || lower.hasPrefix($0 + " :") }
    }

    /// "On Tue, 1 Jan 2024, Taro <t@x> wrote:", "2024年1月1日(月) 10:00 山田 <t@x>:", "…さんは書きました:".
    static func isAttributionLine(_ lines: [String], at index: Int) -> Bool {
        let line = lines[index].trimmingCharacters(in: .whitespaces)
        let joined = index + 1 < lines.count ? line + " " + lines[index + 1].trimmingCharacters(in: .whitespaces) : line
        let followedByQuote = lines[(index + 1)..<min(lines.count, index + 4)].contains { isQuoteLine($0.trimmingCharacters(in: .whitespaces)) }
        for candidate in [line, joined] {
            if candidate.range(of: #"^(On|Am|Le|El|Il|Op)\s.+(wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:$"#, options: .regularExpression) != nil {
                return true
            }
        }
        if line.range(of: #"(書きました|書いています|のメッセージ|wrote)\s*[:：]$"#, options: .regularExpression) != nil { return true }
        // A Japanese date line ending with ':' directly above quoted lines.
        if followedByQuote, line.hasSuffix(":") || line.hasSuffix("："),
           line.range(of: #"\d{4}[年/.-]\s*\d{1,2}[月/.-]\s*\d{1,2}"#, options: .regularExpression) != nil { return true }
        return false
    }

    /// A signature is what follows, near the end, `-- ` (RFC 3676 §4.3), a rule line (`-----`, `_____`,
    /// `━━━━━`, how Japanese business signatures are framed), a "-Name" line, or a bare "Sent from my
    /// iPhone" (not a sentence that happens to start that way).
    private static func hideSignature(_ lines: [String], _ hidden: inout [Bool]) {
        let visibleIndices = hidden.indices.filter { !hidden[$0] }
        guard let lastVisible = visibleIndices.last else { return }
        // The earliest delimiter near the end wins: "-Taro" above a list footer hides both.
        var start: Int?
        for index in visibleIndices.reversed() where lastVisible - index <= 12 {
            let raw = lines[index]
            let line = raw.trimmingCharacters(in: .whitespaces)
            let isDelimiter = raw == "-- " || line == "--" || line == "__"
                || line.range(of: #"^[-_=━─－＿]{5,}$"#, options: .regularExpression) != nil
                || line.range(of: #"^-[A-Za-z][\w.]*(\s[\w.]+){0,2}$"#, options: .regularExpression) != nil
                || line.range(of: #"^Sent from my(\s+[\w-]+){1,4}\.?$"#, options: .regularExpression) != nil
                || line.range(of: #"^(Sent from Mail for|Get Outlook for|iPhoneから送信|iPadから送信|Android版Outlookから送信)"#, options: .regularExpression) != nil
            if isDelimiter { start = index }
        }
        guard let start, start > (visibleIndices.first ?? 0) else { return }
        for rest in start..<lines.count where !hidden[rest] { hidden[rest] = true }
    }
}
