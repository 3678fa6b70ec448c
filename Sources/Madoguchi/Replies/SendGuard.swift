import Foundation

/// What the server checks in a reply before it may leave: the mistakes support teams report most
/// (a template sent with its ●● still in it, a reply greeting another customer by name, "see the
/// attached file" with no file). Peers warn; we refuse the send.
enum SendGuard {
    struct Finding: Sendable, Equatable {
        enum Kind: String, Sendable {
            case leftoverPlaceholder = "leftover-placeholder"
            case emptyBody = "empty-body"
            case missingAttachment = "missing-attachment"
            case wrongCustomerName = "wrong-customer-name"
            case unknownRecipient = "unknown-recipient"
        }

        var kind: Kind
        var message: String
        /// 1-based line and column (in characters) in the body, when the finding has a place.
        var line: Int?
        var column: Int?
        var text: String?
    }

    /// Unfilled template markers. `{{…}}` variables; the runs of ● ○ ◯ ＊ × that Japanese templates
    /// use as blanks; `XX`/`XXX` as a whole word; and `[NAME]`-style bracketed capitals.
    static let placeholderPatterns: [NSRegularExpression] = [
        #"\{\{[^{}\n]{0,100}\}\}"#,
        #"[●○◯＊×✕]{2,}"#,
        #"(?<![A-Za-z0-9])X{2,}(?![A-Za-z0-9])"#,
        #"\[[A-Z][A-Z0-9_ ]{1,40}\]"#,
        #"【[^】\n]{0,20}(名前|氏名|様名|商品名|注文番号|日付|NAME)[^】\n]{0,20}】"#,
    ].map { try! NSRegularExpression(pattern: $0) }

    /// Words that say something is attached.
    static let attachmentWords = ["添付", "attached", "attachment", "enclosed"]

    static func check(body: String, attachmentCount: Int, extraWarningWords: [String] = []) -> [Finding] {
        var findings: [Finding] = []
        if body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return [Finding(kind: .emptyBody, message: "the reply has no text")]
        }
        for pattern in placeholderPatterns {
            for match in pattern.matches(in: body, range: NSRange(body.startIndex..., in: body)) {
                guard let range = Range(match.range, in: body) else { continue }
                findings.append(finding(.leftoverPlaceholder, "placeholder \(body[range]) was not filled in", at: range, in: body))
            }
        }
        for word in extraWarningWords where !word.isEmpty {
            var searchStart = body.startIndex
            while let range = body.range(of: word, range: searchStart..<body.endIndex) {
                findings.append(finding(.leftoverPlaceholder, "the reply contains the warning word \(word)", at: range, in: body))
                searchStart = range.upperBound
            }
        }
        if attachmentCount == 0 {
            let lowered = body.lowercased()
            for word in attachmentWords {
                if let range = lowered.range(of: word) {
                    let original = body.index(body.startIndex, offsetBy: lowered.distance(from: lowered.startIndex, to: range.lowerBound))
                    let end = body.index(original, offsetBy: word.count, limitedBy: body.endIndex) ?? body.endIndex
                    findings.append(finding(.missingAttachment, "the reply mentions an attachment (\(word)) but has none", at: original..<end, in: body))
                    break
                }
            }
        }
        return findings.sorted { ($0.line ?? 0, $0.column ?? 0) < ($1.line ?? 0, $1.column ?? 0) }
    }

    /// The name a reply greets, from its first non-blank line: "山田 花子 様", "山田様", "Dear Hanako Yamada,".
    static func greetedName(in body: String) -> (name: String, line: Int)? {
        for (index, rawLine) in body.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            for honorific in ["様", "さま", "殿"] {
                if let range = line.range(of: honorific) {
                    let name = normalizedName(String(line[..<range.lowerBound]))
                    return name.isEmpty ? nil : (name, index + 1)
                }
            }
            if line.lowercased().hasPrefix("dear ") {
                let name = normalizedName(String(line.dropFirst(5).prefix { $0 != "," }))
                return name.isEmpty ? nil : (name, index + 1)
            }
            return nil  // Only the first line greets.
        }
        return nil
    }

    /// For comparing names: spaces (half- and full-width) removed, case folded.
    static func normalizedName(_ name: String) -> String {
        name.filter { !$0.isWhitespace && $0 != "\u{3000}" }.lowercased()
    }

    private static func finding(_ kind: Finding.Kind, _ message: String, at range: Range<String.Index>, in body: String) -> Finding {
        let before = body[..<range.lowerBound]
        let line = before.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
        let lineStart = before.lastIndex(of: "\n").map { body.index(after: $0) } ?? body.startIndex
        let column = body.distance(from: lineStart, to: range.lowerBound) + 1
        return Finding(kind: kind, message: message, line: line, column: column, text: String(body[range]))
    }
}
