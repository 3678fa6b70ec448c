import Foundation

/// What the server checks in a reply before it may leave: the mistakes support teams report most
/// (a template sent with its ●● still in it, a reply greeting another customer by name, "see the
/// attached file" with no file). Peers warn; we refuse the send.
enum SendGuard {
    struct Finding: Sendable, Equatable {
        enum Kind: String, Sendable {
            case leftoverPlaceholder = "leftover-placeholder"
            /// One of the team's words a reply may never hold (MADOGUCHI_WARNING_WORDS: 要確認, TODO).
            /// A kind of its own: as `leftover-placeholder`, confirming a misread model number waived
            /// them too, and a note to self went out with the reply.
            case warningWord = "warning-word"
            case emptyBody = "empty-body"
            case missingAttachment = "missing-attachment"
            case wrongCustomerName = "wrong-customer-name"
            case unknownRecipient = "unknown-recipient"
            case notAMobileNumber = "not-a-mobile-number"
            case tooLongForSMS = "too-long-for-sms"
            case tooLongForLINE = "too-long-for-line"
        }

        var kind: Kind
        var message: String
        /// 1-based line and column (in characters) in the body, when the finding has a place.
        var line: Int?
        var column: Int?
        var text: String?
    }

    /// The longest text a reply by SMS may be, in UTF-16 code units (an emoji counts two): Twilio's
    /// limit for one message (sent in up to ten parts); Vonage splits as many. Longer, the provider
    /// refuses it after the send was accepted (Twilio 21617) and the ticket comes back flagged.
    static let maxSMSLength = 1600

    /// A text too long for one SMS, found at the send rather than by the provider afterwards.
    static func checkSMSLength(_ body: String) -> [Finding] {
        let length = body.utf16.count
        guard length > maxSMSLength else { return [] }
        return [Finding(kind: .tooLongForSMS,
                        message: "the text is \(length) characters (an emoji counts two), more than the \(maxSMSLength) an SMS reply can carry; shorten it or answer by another channel")]
    }

    /// A text one LINE push cannot carry whole (five messages of 5,000 UTF-16 units, cut at line
    /// breaks: about 20,000 to 25,000 characters), found at the send: the push left the rest out, its
    /// last message saying so, and the reply read sent.
    static func checkLINELength(_ body: String) -> [Finding] {
        guard ProviderDelivery.lineTexts(body).joined() != body else { return [] }
        return [Finding(kind: .tooLongForLINE,
                        message: "the text is \(body.utf16.count) characters as LINE counts them (an emoji counts two), more than one LINE push "
                            + "carries (five messages of 5,000); shorten it or send the rest in another reply")]
    }

    /// Unfilled template markers. `{{…}}` variables; the runs of ● ○ 〇 ◯ ■ □ △ ▲ ＊ × that Japanese
    /// templates use as blanks; `XX`/`XXX` as a whole word; `[NAME]`-style bracketed capitals; and
    /// a single one of them before a counter (○月○日, 第●回) or in a date half filled in (10月○日);
    /// and date blanks (YYYY年MM月DD日,
    /// YYYY/MM/DD, in either case).
    /// Matched on the text with full-width ASCII folded to ASCII (`foldedWidth`), so ｛｛お名前｝｝
    /// and ＸＸ are caught as {{…}} and XX are.
    /// A marker gone wrong is still one: a brace pair half typed (`{{customer.name} 様`, a variable
    /// wrapped over two lines), single braces (`{お名前}`), underscores standing for a name, a date or
    /// a sum (`＿＿様`, `＿＿月＿＿日`, `注文番号：＿＿＿`), `xx` in either case, and one mark or
    /// spaced ones before an honorific (`○様`, `○ ○様`).
    static let placeholderPatterns: [NSRegularExpression] = [
        #"\{\{[^{}\n]{0,100}\}\}"#,
        #"\{\{|\}\}"#,
        #"\{[^{}\n]{1,40}\}"#,
        // Not 〇 written as a kanji numeral's zero (二〇〇〇年, 一〇〇円): a run of 〇 alone after one.
        #"(?<![零一二三四五六七八九十百千万〇])[●○〇◯■□△▲＊×✕]{2,}"#,
        #"(?<=[零一二三四五六七八九十百千万])(?!〇++(?![●○◯■□△▲＊×✕]))[●○〇◯■□△▲＊×✕]{2,}"#,
        #"[●○〇◯■□](?:[ \u3000][●○〇◯■□])+(?=[ \u3000]?(様|さま|殿|[年月日円個件枚]))"#,
        // Not さまざま, 様式, 様子, 様々 or 殿堂 after a bullet (●さまざまなお支払い方法).
        #"(?<![〇零一二三四五六七八九十百千0-9])[●○〇◯](?=[ \u3000]?(様(?![々式子相])|さま(?!ざま)|殿(?!堂)))"#,
        #"_{2,}(?=[ \u3000]*(様|さま|殿|さん|御中|[年月日円個件枚]))"#,
        #"(?<=[:：])[ \u3000]*_{2,}"#,
        // Not a model number's letters ("XX-100", "AB-XX"): a hyphen and a digit beside them.
        #"(?<![A-Za-z0-9])(?<![0-9]-)[Xx]{2,}(?![A-Za-z0-9])(?!-[0-9])"#,
        #"\[[A-Z][A-Z0-9_ ]{1,40}\]"#,
        // Any bracketed word right before an honorific stands for a name (［お名前］様, （お客様名）様,
        // ＜宛名＞様, 【顧客名】様; full-width brackets are folded to ASCII), but not a company's (株) or (有).
        #"[\[(<〈《【「『](?!株|有)[^\[\]()<>〈〉《》【】「」『』\n]{1,12}[\])>〉》】」』](?=[ \u3000]?(?:様|さま|殿))"#,
        #"\*{2,}(?=[ \u3000]?(?:様|さま|殿))"#,
        // A label with its value after it is a form's layout, not a blank (【ご注文番号】12345,
        // 【お名前】山田 花子 様, a subject's 【ご注文番号：12345】発送のご案内): only one that ends its line,
        // or that a particle, an honorific or punctuation follows, stands for something unwritten.
        #"【[^】\n]{0,20}(名前|氏名|様名|商品名|注文番号|日付|NAME)[^】\n]{0,20}】(?=[ \u3000]*(?:\n|$|様|さま|殿|[のをはがにでとへも、。,.!！?？)）]|から|より|まで))"#,
        // One mark is a blank too in a date (○月○日) or a count (第●回, 合計●円), but a mark at the
        // start of a line or after a space is a bullet (●日時, ●個人情報について), and one after a
        // numeral is a digit (二〇二六年一〇月一〇日).
        #"[●○〇◯△▲■□]{1,2}\s*[年月]\s*[●○〇◯△▲■□]{1,2}\s*[月日]"#,
        #"第[●○〇◯△▲■□]"#,
        // A date half filled in: the day left blank after a month (10月○日, 十二月〇日), the month
        // before a day (○月10日), or a day with its weekday (○日(月)). Not a kanji date's zero
        // (一〇月一〇日, 二〇日(月)).
        #"(?<=[0-9一二三四五六七八九十]月)[ \u3000]?[●○〇◯△▲■□]{1,2}[ \u3000]?日"#,
        #"(?<![零一二三四五六七八九十0-9〇])[●○〇◯]{1,2}[ \u3000]?月[ \u3000]?[0-9一二三四五六七八九十〇]{1,3}[ \u3000]?日"#,
        #"(?<![零一二三四五六七八九十0-9〇])[●○〇◯]{1,2}[ \u3000]?日[ \u3000]?[(（][月火水木金土日][)）]"#,
        #"(?<=[^\s〇零一二三四五六七八九十百千0-9●○〇◯])[●○〇◯](?=[円個件枚台点冊])"#,
        #"(?i)(?<![A-Za-z])(YYYY|MM|DD)[年月日]"#,
        #"(?i)(?<![A-Za-z])YYYY[/.-]MM[/.-]DD(?![A-Za-z])"#,
    ].map { try! NSRegularExpression(pattern: $0) }

    /// Words that say something is attached (`attach` covers attached, attachment, attaching).
    static let attachmentWords = ["添付", "添附", "別添", "attach", "enclosed"]

    /// After a Japanese word for attaching, what makes it the customer's to do or done by them: asked
    /// (写真を添付してご返信ください, 添付のうえメールでお送りください, 添付願います) or thanked for
    /// (添付いただいた). Our own stays ours: 添付してお送りします, 添付しておりますのでご確認ください,
    /// 添付ファイルをご確認ください.
    private static let customersAttaching = try! NSRegularExpression(
        pattern: #"^(?:(?:して|の(?:上|うえ))[、,]?(?:(?!おり|ます|あり|させ|確認|ご覧|した)[^。\n]){0,12}?|(?:ご?返信|ご?送付|お送り|送信|ご連絡)?)(?:ください|下さい|いただ|頂|願)"#)

    /// Findings in `body`, placed by line and column of the body with its line breaks as LF
    /// (`lineBreaksAsLF`).
    /// `customerSubject`: for a body a template wrote with `{{ticket.subject}}` (the automatic
    /// reply), whose markers found in the customer's subject are theirs (see `checkSubject`). An
    /// agent's body quotes the customer with `>` instead, and gets no such allowance.
    /// `customerWords`: what the customer wrote on the ticket, when known: a quoted line's marker is
    /// theirs only if it is found there (a template's "＞お届け予定日：○○月○○日" uses ＞ as a bullet,
    /// and its blank is ours); nil, any quoted line's is.
    static func check(body: String, attachmentCount: Int, extraWarningWords: [String] = [], customerSubject: String = "",
                      customerWords: String? = nil) -> [Finding] {
        let body = lineBreaksAsLF(body)
        var findings: [Finding] = []
        if body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return [Finding(kind: .emptyBody, message: "the reply has no text")]
        }
        findings += placeholders(in: body, theirs: customerSubject, quoting: customerWords)
        for word in extraWarningWords where !word.isEmpty {
            var searchStart = body.startIndex
            while let range = body.range(of: word, options: warningWordMatching, range: searchStart..<body.endIndex) {
                findings.append(finding(.warningWord, "the reply contains the warning word \(word)", at: range, in: body))
                searchStart = range.upperBound
            }
        }
        if attachmentCount == 0, let mention = attachmentMention(in: body) {
            findings.append(finding(.missingAttachment, "the reply mentions an attachment (\(body[mention])) but has none", at: mention, in: body))
        }
        return findings.sorted { ($0.line ?? 0, $0.column ?? 0) < ($1.line ?? 0, $1.column ?? 0) }
    }

    /// The first word saying something is attached, outside quoted lines: the customer's "写真を添付
    /// しました", quoted back to them, is their attachment, not one the reply forgot.
    private static func attachmentMention(in body: String) -> Range<String.Index>? {
        for word in attachmentWords {
            var searchStart = body.startIndex
            while let range = body.range(of: word, options: .caseInsensitive, range: searchStart..<body.endIndex) {
                if !isQuoted(range.lowerBound, in: body) && !isCustomersAttaching(range, in: body) { return range }
                searchStart = range.upperBound
            }
        }
        return nil
    }

    /// The words right before an English mention that make it the customer's: "Please attach", "you
    /// attached", "your attachment" (not "Please find attached", which is ours).
    private static let customersEnglish = try! NSRegularExpression(pattern: #"(?i)\b(please|you|you've|you have|your)\s+$"#)

    /// After a Japanese word for attaching, what says nothing was attached: the customer's file that
    /// did not arrive (お写真が添付されていないようでしたので, 添付がございませんでした, 添付漏れ,
    /// 添付ファイルが見当たりませんでした), a line every shop writes and no file of ours is missing from.
    private static let nothingAttached = try! NSRegularExpression(
        pattern: #"^(?:ファイル|画像|写真|資料)?(?:が|は)?(?:されて(?:いな|おらず|おりませ)|漏れ|もれ|(?:ござい|あり)ませ|な(?:い|く|かっ)|見当たら|見当たりませ|確認でき(?:ず|ませ|な))"#)

    /// Whether the mention at `range` is of the customer attaching something: ご添付 (the honorific is
    /// theirs), a request or thanks after the word (`customersAttaching`), the customer's attachment
    /// that is not there (`nothingAttached`), or in English the words right before it (`customersEnglish`).
    private static func isCustomersAttaching(_ range: Range<String.Index>, in body: String) -> Bool {
        if body[range].first?.isASCII == true {
            let before = String(body[body.index(range.lowerBound, offsetBy: -min(16, body.distance(from: body.startIndex, to: range.lowerBound)))..<range.lowerBound])
            return customersEnglish.firstMatch(in: before, range: NSRange(before.startIndex..., in: before)) != nil
        }
        if range.lowerBound > body.startIndex, body[body.index(before: range.lowerBound)] == "ご" { return true }
        let after = String(body[range.upperBound...].prefix(20))
        let whole = NSRange(after.startIndex..., in: after)
        return customersAttaching.firstMatch(in: after, range: whole) != nil || nothingAttached.firstMatch(in: after, range: whole) != nil
    }

    /// What the body's guards find in a subject (placeholders, warning words), without a place: the
    /// customer reads a subject first, and a template's ●● there is as unsent as one in the body.
    ///
    /// Not what the customer wrote: a reply's subject repeats theirs ("Re: 【注文番号 A123】未着 [#12]",
    /// "Re: [URGENT] 型番XX-100"), and a marker found in `customerSubject` is their words, as a quoted
    /// line is in the body. Without this, the subject the service itself wrote could not be sent.
    static func checkSubject(_ subject: String, customerSubject: String = "", extraWarningWords: [String] = []) -> [Finding] {
        var findings = placeholders(in: subject, theirs: customerSubject).map {
            Finding(kind: .leftoverPlaceholder, message: "in the subject, \($0.message)", text: $0.text)
        }
        for word in extraWarningWords where !word.isEmpty && subject.range(of: word, options: warningWordMatching) != nil
            && customerSubject.range(of: word, options: warningWordMatching) == nil {
            findings.append(Finding(kind: .warningWord, message: "the subject contains the warning word \(word)", text: word))
        }
        return findings
    }

    /// What the subject's guards find in an attached file's name: ○○様_お見積書.pdf is a template's
    /// file, never renamed for this customer.
    static func checkFileName(_ name: String, extraWarningWords: [String] = []) -> [Finding] {
        var findings = placeholders(in: name).map {
            Finding(kind: .leftoverPlaceholder, message: "in the attachment's name \(name), \($0.message)", text: $0.text)
        }
        for word in extraWarningWords where !word.isEmpty && name.range(of: word, options: warningWordMatching) != nil {
            findings.append(Finding(kind: .warningWord, message: "the attachment's name \(name) contains the warning word \(word)", text: word))
        }
        return findings
    }

    /// A warning word matches whatever its case and width: TODO, todo and ＴＯＤＯ.
    static let warningWordMatching: String.CompareOptions = [.caseInsensitive, .widthInsensitive]

    /// `text` with CRLF and lone CR line breaks as LF. A body from a web form's textarea comes with
    /// CRLF, which Swift reads as one character: not "\n", so a line-by-line check saw one line.
    static func lineBreaksAsLF(_ text: String) -> String {
        text.contains("\r") ? text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") : text
    }

    /// The unfilled markers in `text`, outside quoted lines (`> …`, `＞ …`): what the customer wrote
    /// and the reply quotes (a product code XX-100, their own ○○) is theirs, not a blank of ours.
    /// So is a marker found in `theirs` (the customer's subject, which ours repeats).
    /// With `quoting` (what the customer wrote), a quoted line's marker is theirs only if found in it.
    static func placeholders(in text: String, theirs: String = "", quoting: String? = nil) -> [Finding] {
        let folded = foldedWidth(text)
        let theirs = foldedWidth(theirs)
        let quoted = quoting.map(foldedWidth)
        var findings: [Finding] = []
        var found: [NSRange] = []
        for pattern in placeholderPatterns {
            for match in pattern.matches(in: folded, range: NSRange(folded.startIndex..., in: folded)) {
                // Folding keeps every UTF-16 offset, so the match's range is the same in the text.
                guard let range = Range(match.range, in: text), let marker = Range(match.range, in: folded),
                      !(isQuoted(range.lowerBound, in: text) && (quoted.map { $0.contains(folded[marker]) } ?? true)),
                      theirs.isEmpty || !theirs.contains(folded[marker]),
                      // One blank, one finding: ○○月○○日 is matched as a run of marks and as a date.
                      !found.contains(where: { NSIntersectionRange($0, match.range).length > 0 }),
                      !isDivider(range, in: text)
                else { continue }
                found.append(match.range)
                findings.append(finding(.leftoverPlaceholder, "placeholder \(text[range]) was not filled in", at: range, in: text))
            }
        }
        return findings
    }

    /// Whether the marks at `range` are a divider, not a blank: a line of their own, ten or more
    /// (＊＊＊＊＊＊＊＊＊＊, ■□■□■□■□■□, a signature's frame). Not a blank a template puts on a line
    /// of its own, a value under its label: shorter (ご注文番号 / ●●●●●●●●), shaped like a number
    /// (●●●-●●●●-●●●●, ××××-××××), after a label's colon or bracket (ご注文番号： / ○○○○○○○○○○,
    /// 【送り状番号】 / ●●●●●●●●●●●●), or carried
    /// on by the next line (＊＊＊＊＊＊＊＊＊＊ / 円となります。). Five marks were a divider once, wherever
    /// they stood, and a template's order number, direct line and refund went out unfilled.
    static func isDivider(_ range: Range<String.Index>, in text: String) -> Bool {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        let lineStart = text[..<range.lowerBound].lastIndex(where: \.isNewline).map { text.index(after: $0) } ?? text.startIndex
        let lineEnd = text[range.upperBound...].firstIndex(where: \.isNewline) ?? text.endIndex
        let line = text[lineStart..<lineEnd].filter { !$0.isWhitespace }
        // Rules drawn with lines (-----, =====, ━━━━━) are dividers from five: nobody's blank.
        if line.count >= 5, line.allSatisfy(ruleMarks.contains) { return true }
        guard line.count >= 10, line.allSatisfy({ dividerMarks.contains($0) }),
              !(line.contains(where: blankMarks.contains) && line.contains(where: numberSeparators.contains)) else { return false }
        let index = text[..<lineStart].filter(\.isNewline).count
        let trimmed = { (line: Substring) in line.trimmingCharacters(in: .whitespaces) }
        let before = lines[..<min(index, lines.count)].last { !trimmed($0).isEmpty }.map(trimmed) ?? ""
        let after = index + 1 < lines.count ? trimmed(lines[index + 1]) : ""
        if before.hasSuffix("：") || before.hasSuffix(":") || before.hasSuffix("】") { return false }
        return !continuations.contains { after.hasPrefix($0) }
    }

    private static let dividerMarks: Set<Character> = ["●", "○", "◯", "■", "□", "△", "▲", "＊", "*", "×", "✕", "◆", "◇", "★", "☆", "=", "-", "＝", "－", "━", "─"]
    /// The marks templates use for a blank, and what separates a number's groups.
    private static let blankMarks: Set<Character> = ["●", "○", "◯", "■", "□", "△", "▲", "＊", "*", "×", "✕"]
    private static let numberSeparators: Set<Character> = ["-", "－", "ー", "‐", "/", "／", "."]
    private static let ruleMarks: Set<Character> = ["=", "-", "＝", "－", "━", "─"]
    /// How a line goes on from a value the line above left blank: a particle or 円. Not は, と, や, 日:
    /// a shop's name under its frame begins with them (はーと雑貨店, 日本茶専門店).
    private static let continuations = ["の", "に", "を", "が", "で", "へ", "まで", "より", "から", "円"]

    /// `text` with full-width ASCII (U+FF01–FF5E) as ASCII: one UTF-16 unit for one, offsets unchanged.
    /// Not ＊, a blank of its own whose ASCII twin is not (a masked card number, ****1234).
    /// The small-form braces (﹛﹛お名前﹜﹜, U+FE5B/FE5C) as braces too: one UTF-16 unit each, as `{` `}`.
    static func foldedWidth(_ text: String) -> String {
        let folded = Text.foldingFullWidthASCII(text, keeping: [0xFF0A])
        guard folded.unicodeScalars.contains(where: { $0 == "\u{FE5B}" || $0 == "\u{FE5C}" }) else { return folded }
        return String(String.UnicodeScalarView(folded.unicodeScalars.map { $0 == "\u{FE5B}" ? "{" : $0 == "\u{FE5C}" ? "}" : $0 }))
    }

    /// Whether the line holding `index` is quoted: its first non-blank character is > or ＞.
    static func isQuoted(_ index: String.Index, in text: String) -> Bool {
        let lineStart = text[..<index].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        return isQuote(text[lineStart...])
    }

    /// Whether any line of `text` is quoted.
    static func quotesAnything(_ text: String) -> Bool {
        lineBreaksAsLF(text).split(separator: "\n").contains(where: isQuote)
    }

    /// Whether the line starting `line` is quoted: its first non-blank character is > or ＞.
    private static func isQuote(_ line: Substring) -> Bool {
        line.first { $0 != " " && $0 != "\u{3000}" && $0 != "\t" }.map { $0 == ">" || $0 == "＞" } ?? false
    }

    /// The name a reply greets, from its opening: the first non-blank line, or one of the two lines
    /// after it before a blank line that ends with an honorific (a Japanese letter puts the company
    /// first: "株式会社サンプル\n佐藤 次郎 様"). "山田 花子 様", "山田様", "山田さん", "Dear Mr. Sato,".
    /// Of the words before the honorific, a company's ("株式会社サンプル", "（株）", "営業部") and an
    /// English title are not the name, and the last two words are.
    static func greetedName(in body: String) -> (name: String, line: Int)? {
        var opening = 0
        for (index, rawLine) in lineBreaksAsLF(body).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty {
                if opening > 0 { return nil }  // The opening ends at its first blank line.
                continue
            }
            opening += 1
            if opening > 3 { return nil }
            if let words = honorificWords(line, anywhere: opening == 1) ?? dearWords(line) {
                let name = normalizedName(nameWords(words).joined())
                return name.isEmpty || genericSalutations.contains(name) ? nil : (name, index + 1)
            }
            if opening == 1, line.hasSuffix("。") || line.hasSuffix(".") { return nil }  // A sentence, not a name.
        }
        return nil
    }

    private static let honorifics = ["様", "さま", "殿", "さん"]

    /// Greetings of no one in particular (お客様, ご担当者様, 会員の皆様): no name to check.
    private static let genericSalutations: Set<String> = [
        "お客", "ご担当者", "担当者", "ご担当", "ご担当者各位", "会員", "会員の皆", "皆", "みな", "各位", "ご利用者", "利用者",
        "ご購入者", "購入者", "お得意", "関係者", "関係者各位", "customer", "customers", "sir", "madam", "sirormadam", "all",
    ]

    /// The words before an honorific: anywhere on the first line ("山田様、いつも…"), at the line's
    /// end on the lines after it (so "鈴木様にもお伝えください" there is no greeting).
    private static func honorificWords(_ line: String, anywhere: Bool) -> [Substring]? {
        for honorific in honorifics {
            guard let range = line.range(of: honorific) else { continue }
            let after = line[range.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: " \u{3000}、,:：。"))
            guard anywhere || after.isEmpty else { continue }
            return line[..<range.lowerBound].split(whereSeparator: { $0.isWhitespace })
        }
        return nil
    }

    private static func dearWords(_ line: String) -> [Substring]? {
        guard line.lowercased().hasPrefix("dear ") else { return nil }
        return line.dropFirst(5).prefix { $0 != "," }.split(whereSeparator: { $0.isWhitespace })
    }

    /// The name among the words before an honorific: without a company's words and English titles, the last two.
    private static func nameWords(_ words: [Substring]) -> [Substring] {
        let titles: Set<String> = ["mr", "mr.", "ms", "ms.", "mrs", "mrs.", "miss", "dr", "dr.", "mx", "mx."]
        // A department's word (営業部) is three characters or more and never the last: 阿部, 服部 and
        // 小室 are family names.
        let named = words.enumerated().filter { index, word in
            let folded = String(word).precomposedStringWithCompatibilityMapping
            return !titles.contains(folded.lowercased())
                && !["会社", "(株)", "(有)", "㈱", "㈲", "御中"].contains(where: folded.contains)
                && !(index < words.count - 1 && folded.count >= 3 && ["部", "課", "係", "室", "店"].contains(where: folded.hasSuffix))
        }.map(\.element)
        return Array(named.suffix(2))
    }

    /// For comparing names: compatibility forms folded (ＳＡＴＯ, ｻﾄｳ), spaces removed, case folded;
    /// what `customer_greeting_name` (migration 0083) does to a customer's display name. (Variant
    /// kanji are folded in SQL, on both sides, by `name_variants_folded`: migration 0100.)
    static func normalizedName(_ name: String) -> String {
        name.precomposedStringWithCompatibilityMapping.filter { !$0.isWhitespace && $0 != "\u{3000}" }.lowercased()
    }

    private static func finding(_ kind: Finding.Kind, _ message: String, at range: Range<String.Index>, in body: String) -> Finding {
        let before = body[..<range.lowerBound]
        let line = before.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
        let lineStart = before.lastIndex(of: "\n").map { body.index(after: $0) } ?? body.startIndex
        let column = body.distance(from: lineStart, to: range.lowerBound) + 1
        return Finding(kind: kind, message: message, line: line, column: column, text: String(body[range]))
    }
}
