import Foundation
import Testing
@testable import MadoguchiMail

@Suite("Writing mail")
struct MailComposerTests {
    static let japaneseText = """
        山田様

        いつもご利用ありがとうございます。カスタマーサポートの佐藤です。
        「ご注文番号 A-1234」の件、本日発送いたしました。ひらがな、カタカナ、漢字。
        Tracking: https://shop.example/t/1234

        """
    static let japaneseSubject = "【重要】ご注文の発送について (A-1234)"

    func mail(to address: String = "taro@docomo.ne.jp", subject: String = japaneseSubject, text: String = japaneseText) -> OutgoingMail {
        OutgoingMail(
            from: MailAddress(name: "サポート 佐藤", address: "support@shop.example"),
            to: [MailAddress(name: "山田 太郎", address: address)],
            subject: subject, messageID: "reply-1@shop.example", date: Date(timeIntervalSince1970: 1_796_123_700), text: text)
    }

    /// Composes and reads back with this module's parser.
    func roundTrip(_ mail: OutgoingMail) throws -> (ComposedMail, ParsedMail) {
        let composed = try MailComposer.compose(mail)
        return (composed, ParsedMail(composed.bytes))
    }

    /// The header section's physical lines (folding kept) and the body.
    func sections(_ bytes: [UInt8]) -> (headerLines: [String], body: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let end = text.range(of: "\r\n\r\n")!
        let body = Array(text[end.upperBound...].utf8)
        return (text[..<end.lowerBound].components(separatedBy: "\r\n"), body)
    }

    func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n").map { Array($0.utf8)[...] }
    }

    /// Every `=?…?=` in the header lines.
    func encodedWords(_ headerLines: [String]) -> [Substring] {
        headerLines.flatMap { $0.split(separator: " ") }
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\",;")) }
            .filter { $0.hasPrefix("=?") && $0.hasSuffix("?=") }
            .map { Substring($0) }
    }

    func endsInASCII(_ line: ArraySlice<UInt8>) -> Bool {
        guard let escape = line.lastIndex(of: 0x1B) else { return true }
        return Array(line[escape...]) == [0x1B, 0x28, 0x42]
    }

    // MARK: Charsets

    @Test("Japanese text to a carrier: ISO-2022-JP, 7bit, every line back in ASCII, read back exactly")
    func carrierGetsISO2022JP() throws {
        let (composed, parsed) = try roundTrip(mail())
        #expect(composed.charset == "ISO-2022-JP")
        #expect(!composed.needsSMTPUTF8)
        #expect(composed.bytes.allSatisfy { $0 < 0x80 })
        let (headers, body) = sections(composed.bytes)
        #expect(headers.contains("Content-Type: text/plain; charset=ISO-2022-JP"))
        #expect(headers.contains("Content-Transfer-Encoding: 7bit"))
        #expect(body.contains(0x1B))
        #expect(lines(body).allSatisfy(endsInASCII))
        #expect(encodedWords(headers).allSatisfy { $0.hasPrefix("=?ISO-2022-JP?B?") })
        #expect(parsed.text == Self.japaneseText)
        #expect(parsed.subject == Self.japaneseSubject)
        #expect(parsed.from == MailAddress(name: "サポート 佐藤", address: "support@shop.example"))
        #expect(parsed.to == [MailAddress(name: "山田 太郎", address: "taro@docomo.ne.jp")])
    }

    @Test("the same text elsewhere: UTF-8 in base64")
    func othersGetUTF8() throws {
        let (composed, parsed) = try roundTrip(mail(to: "taro@example.jp"))
        #expect(composed.charset == "UTF-8")
        let (headers, _) = sections(composed.bytes)
        #expect(headers.contains("Content-Type: text/plain; charset=UTF-8"))
        #expect(headers.contains("Content-Transfer-Encoding: base64"))
        #expect(parsed.text == Self.japaneseText)
        #expect(parsed.subject == Self.japaneseSubject)
        #expect(parsed.to.first?.name == "山田 太郎")
    }

    @Test("a carrier recipient and characters JIS X 0208 lacks: UTF-8 with the text as written")
    func unencodableFallsBackToUTF8() throws {
        let text = "～①㈱のご案内です。\n"
        let (composed, parsed) = try roundTrip(mail(subject: "①のご案内～", text: text))
        #expect(composed.charset == "UTF-8")
        #expect(parsed.text == text)
        #expect(parsed.subject == "①のご案内～")
        // One unencodable character anywhere, here only in a display name, decides for the whole mail.
        var named = mail()
        named.to[0].name = "髙橋 ①"
        #expect(try MailComposer.compose(named).charset == "UTF-8")
    }

    @Test("half-width katakana to a carrier become full-width, sound marks joined")
    func halfWidthKanaBecomesFullWidth() throws {
        let (composed, parsed) = try roundTrip(mail(subject: "ｶﾞｲﾄﾞ", text: "ｶﾞｲﾄﾞ ﾊﾟｽ ｳﾞｧｲｵﾘﾝ ｱｲｳ｡ﾜﾞ\n"))
        #expect(composed.charset == "ISO-2022-JP")
        #expect(parsed.subject == "ガイド")
        #expect(parsed.text == "ガイド パス ヴァイオリン アイウ。ワ゛\n")
    }

    @Test("CP932 code points become their JIS X 0208 equivalents; every half-width kana is encodable")
    func normalization() throws {
        #expect(ISO2022JPEncoder.normalize("～∥－￠￡￢—") == "〜‖−¢£¬―")
        let encoder = try #require(ISO2022JPEncoder())
        let halfWidth = String(String.UnicodeScalarView((0xFF61...0xFF9F).map { Unicode.Scalar($0)! }))
        #expect(encoder.canEncode(ISO2022JPEncoder.normalize(halfWidth)))
        #expect(!encoder.canEncode("①"))
        #expect(!encoder.canEncode("\u{1B}$B"))  // an ESC in the text would switch modes
        let (composed, parsed) = try roundTrip(mail(text: "10～12時\n"))
        #expect(composed.charset == "ISO-2022-JP")
        #expect(composed.bytes.contains([0x1B, 0x24, 0x42, 0x21, 0x41]))  // 〜 as JIS 1-33
        // Foundation reads JIS 1-33 back as ～ (CP932's choice), Python as 〜: either is the same dash.
        #expect(["10～12時\n", "10〜12時\n"].contains(parsed.text))
    }

    @Test("plain ASCII is US-ASCII 7bit")
    func asciiStaysASCII() throws {
        var outgoing = mail(subject: "Your order", text: "Hello,\nshipped.\n")
        outgoing.from.name = "Shop Support"
        outgoing.to[0].name = nil
        let (composed, parsed) = try roundTrip(outgoing)
        #expect(composed.charset == "US-ASCII")
        #expect(sections(composed.bytes).headerLines.contains("Content-Transfer-Encoding: 7bit"))
        #expect(parsed.text == "Hello,\nshipped.\n")
    }

    // MARK: Headers

    @Test("a 2,000-character Japanese subject, in both charsets: short lines, short encoded words, exact", arguments: ["taro@docomo.ne.jp", "taro@example.jp"])
    func longSubject(recipient: String) throws {
        let subject = String(repeating: "日本語の件名です。", count: 223).prefix(2_000)
        let (composed, parsed) = try roundTrip(mail(to: recipient, subject: String(subject)))
        let headers = sections(composed.bytes).headerLines
        #expect(headers.allSatisfy { $0.utf8.count <= 76 })
        #expect(encodedWords(headers).count > 100)
        #expect(encodedWords(headers).allSatisfy { $0.count <= 75 })
        #expect(parsed.subject == String(subject))
    }

    @Test("every header line holding an encoded word is at most 76 characters (RFC 2047 §2), whatever follows the word")
    func encodedWordLines() throws {
        for count in 1...45 {
            let japanese = String(repeating: "あ", count: count)
            var outgoing = mail(to: "taro@example.jp", subject: "Re: " + japanese + " order-1234567 " + japanese + " [#12345]")
            outgoing.to[0].name = japanese + " 様"
            outgoing.from.name = "Shop " + japanese
            let (composed, parsed) = try roundTrip(outgoing)
            let lines = sections(composed.bytes).headerLines
            let tooLong = lines.filter { $0.contains("=?") && $0.utf8.count > 76 }
            #expect(tooLong.isEmpty, "\(count): \(tooLong)")
            #expect(parsed.subject == outgoing.subject)
            #expect(parsed.to.first?.name == outgoing.to[0].name)
        }
    }

    @Test("ASCII subjects fold at spaces; mixed ones encode only the words that need it, spaces kept")
    func subjects() throws {
        let long = (1...40).map { "word\($0)" }.joined(separator: " ")
        let (composed, parsed) = try roundTrip(mail(subject: long, text: "x\n"))
        let headers = sections(composed.bytes).headerLines
        #expect(headers.allSatisfy { $0.utf8.count <= 78 })
        #expect(headers.filter { $0.hasPrefix(" word") }.count > 2)
        #expect(encodedWords(headers.filter { $0.contains("word") }).isEmpty)
        #expect(parsed.subject == long)

        for subject in ["Re:  ご注文  の件 [#12]", "Re: =?utf-8?B?not-a-word?=", "ご注文 Re:", "tab\there"] {
            #expect(try roundTrip(mail(to: "taro@example.jp", subject: subject)).1.subject == subject)
        }
        let mixed = sections(try MailComposer.compose(mail(to: "taro@example.jp", subject: "Re: ご注文 [#12]")).bytes).headerLines
        #expect(mixed.contains { $0.hasPrefix("Subject: Re: =?UTF-8?B?") && $0.hasSuffix("?= [#12]") })
    }

    @Test("header order, threading ids, the date")
    func threading() throws {
        var outgoing = mail()
        outgoing.cc = [MailAddress(name: "Quoted, Name", address: "cc@example.com"), MailAddress(name: nil, address: "taro..yamada.@docomo.ne.jp")]
        outgoing.replyTo = MailAddress(name: "Support", address: "reply+t123@shop.example")
        outgoing.inReplyTo = "CAF=abc@mail.example"
        outgoing.references = (1...12).map { "ref-\($0)-0123456789@mail.example" }
        outgoing.extraHeaders = [(name: "X-Madoguchi-Ticket", value: "T-123")]
        let (composed, parsed) = try roundTrip(outgoing)
        let headers = sections(composed.bytes).headerLines
        let names = headers.filter { !$0.hasPrefix(" ") }.map { String($0.prefix { $0 != ":" }) }
        #expect(names == ["Date", "From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References",
                          "MIME-Version", "X-Madoguchi-Ticket", "Content-Type", "Content-Transfer-Encoding"])
        #expect(headers.first == "Date: Tue, 01 Dec 2026 11:15:00 +0000")
        #expect(headers.contains("Message-ID: <reply-1@shop.example>"))
        #expect(headers.contains("In-Reply-To: <CAF=abc@mail.example>"))
        #expect(headers.allSatisfy { $0.utf8.count <= 78 })
        #expect(parsed.messageID == "reply-1@shop.example")
        #expect(parsed.inReplyTo == ["CAF=abc@mail.example"])
        #expect(parsed.references == outgoing.references)
        #expect(parsed.cc == outgoing.cc)
        #expect(parsed.replyTo == [outgoing.replyTo!])
        #expect(parsed.date == outgoing.date)
        #expect(parsed.root.headers["X-Madoguchi-Ticket"] == "T-123")
    }

    @Test("Auto-Submitted only when set")
    func autoSubmitted() throws {
        #expect(try roundTrip(mail()).1.autoSubmitted == nil)
        var automatic = mail()
        automatic.autoSubmitted = "auto-replied"
        #expect(try roundTrip(automatic).1.autoSubmitted == "auto-replied")
    }

    @Test("a non-ASCII address is written raw and asks for SMTPUTF8")
    func internationalAddress() throws {
        let (composed, parsed) = try roundTrip(mail(to: "山田@例え.jp"))
        #expect(composed.needsSMTPUTF8)
        #expect(parsed.to.first?.address == "山田@例え.jp")
    }

    // MARK: Refusals

    @Test("CR, LF or NUL in a recipient, name, subject, id or extra header fails the whole mail")
    func headerInjection() {
        var badAddress = mail()
        badAddress.to = [MailAddress(name: nil, address: "x@example.com\r\nBcc: victim@example.com")]
        badAddress.to[0].address = "x@example.com\r\nBcc: victim@example.com"
        #expect(throws: MailComposer.Failure.headerInjection(field: "To")) { try MailComposer.compose(badAddress) }
        var badName = mail()
        badName.cc = [MailAddress(name: "Eve\nBcc: victim@example.com", address: "eve@example.com")]
        #expect(throws: MailComposer.Failure.headerInjection(field: "Cc")) { try MailComposer.compose(badName) }
        #expect(throws: MailComposer.Failure.headerInjection(field: "Subject")) { try MailComposer.compose(mail(subject: "Hi\r\nBcc: x@y")) }
        var badID = mail()
        badID.inReplyTo = "a@b>\nX: y"
        #expect(throws: MailComposer.Failure.headerInjection(field: "In-Reply-To")) { try MailComposer.compose(badID) }
        var badExtra = mail()
        badExtra.extraHeaders = [(name: "X-Note", value: "a\0b")]
        #expect(throws: MailComposer.Failure.headerInjection(field: "X-Note")) { try MailComposer.compose(badExtra) }
    }

    @Test("a name with line breaks is one line: read from an encoded word, and made so for writing")
    func namesOnOneLine() throws {
        // 山田, a line feed, 太郎: an encoded word may decode to anything.
        let encoded = Data("山田\n太郎".utf8).base64EncodedString()
        #expect(MailAddress.list(Array("=?UTF-8?B?\(encoded)?= <yamada@example.jp>".utf8)) == [MailAddress(name: "山田 太郎", address: "yamada@example.jp")])
        #expect(MailAddress.oneLineName("佐藤\r\n\r\n花子\u{2028}様") == "佐藤 花子 様")
        #expect(MailAddress.oneLineName(" \n\t ") == nil)
        #expect(MailAddress.oneLineName("Taro Yamada") == "Taro Yamada")
    }

    @Test("a run of spaces too long for one line goes inside encoded words: every line within 998 octets, the subject exact", arguments: ["taro@docomo.ne.jp", "taro@example.jp"])
    func subjectWithALongRunOfSpaces(to recipient: String) throws {
        for subject in ["Re: a" + String(repeating: " ", count: 1_200) + "b [#12]", "日本" + String(repeating: " ", count: 1_000) + "abc"] {
            let (composed, parsed) = try roundTrip(mail(to: recipient, subject: subject))
            #expect(lines(composed.bytes).allSatisfy { $0.count <= 998 }, "every line within 998 octets")
            #expect(parsed.subject == subject)
        }
    }

    @Test("a quoted name that escaping takes past the line limit goes as encoded words instead")
    func longQuotedName() throws {
        var long = mail(to: "taro@example.jp")
        long.to = [MailAddress(name: String(repeating: "\"", count: 500), address: "taro@example.jp")]
        let composed = try MailComposer.compose(long)
        #expect(lines(composed.bytes).allSatisfy { $0.count <= 998 }, "every line within 998 octets")
        #expect(ParsedMail(composed.bytes).to.first?.name == String(repeating: "\"", count: 500))
    }

    @Test("a quoted local part is written as it is and read back as the same mailbox: one such recipient no longer fails the reply")
    func quotedLocalParts() throws {
        for address in [#""john doe"@cust.example"#, #""a,b"@cust.example"#, #""x(y)"@cust.example"#, #""say \"hi\""@cust.example"#] {
            let (_, parsed) = try roundTrip(mail(to: address))
            #expect(parsed.to.map(\.address) == [address], "\(address)")
        }
    }

    @Test("other refusals: non-ASCII ids and extras, reserved extras, bad addresses and media types")
    func refusals() {
        var outgoing = mail()
        outgoing.messageID = "返信@shop.example"
        #expect(throws: MailComposer.Failure.nonASCII(field: "Message-ID")) { try MailComposer.compose(outgoing) }
        outgoing = mail()
        outgoing.extraHeaders = [(name: "X-Note", value: "日本")]
        #expect(throws: MailComposer.Failure.nonASCII(field: "X-Note")) { try MailComposer.compose(outgoing) }
        outgoing.extraHeaders = [(name: "content-type", value: "text/html")]
        #expect(throws: MailComposer.Failure.reservedHeader("content-type")) { try MailComposer.compose(outgoing) }
        #expect(throws: MailComposer.Failure.invalidAddress(field: "To")) { try MailComposer.compose(mail(to: "a b@example.com")) }
        #expect(throws: MailComposer.Failure.invalidAddress(field: "To")) { try MailComposer.compose(mail(to: "nobody")) }
        #expect(throws: MailComposer.Failure.invalidAddress(field: "To")) { try MailComposer.compose(mail(to: "a,b@example.com")) }
        #expect(throws: MailComposer.Failure.invalidAddress(field: "To")) { try MailComposer.compose(mail(to: #""a"b"@example.com"#)) }
        #expect(throws: MailComposer.Failure.invalidAddress(field: "To")) { try MailComposer.compose(mail(to: #""ab\"@example.com"#)) }
        #expect(throws: MailComposer.Failure.invalidAddress(field: "To")) { try MailComposer.compose(mail(to: #"a@"x y".com"#)) }
        outgoing = mail()
        outgoing.attachments = [.init(filename: "a.pdf", mediaType: "application/pdf; x=y", content: [])]
        #expect(throws: MailComposer.Failure.invalidMediaType("application/pdf; x=y")) { try MailComposer.compose(outgoing) }
        outgoing.attachments = []
        outgoing.to = []
        #expect(throws: MailComposer.Failure.noRecipients) { try MailComposer.compose(outgoing) }
        // What a caller can filter inbound References with, rather than fail the reply.
        #expect(MailComposer.isWritableMessageID("CAF=x+y@mail.example"))
        #expect(!MailComposer.isWritableMessageID("a<b@mail.example"))
        #expect(!MailComposer.isWritableMessageID("返信@mail.example"))
    }

    // MARK: Bodies

    @Test("HTML alternative: text first, HTML in UTF-8 even beside ISO-2022-JP text")
    func htmlAlternative() throws {
        var outgoing = mail()
        outgoing.html = "<p>いつもご利用ありがとうございます。①</p>\n<p>--=_mdg_</p>"
        let (composed, parsed) = try roundTrip(outgoing)
        #expect(composed.charset == "ISO-2022-JP")
        #expect(parsed.root.mediaType == "multipart/alternative")
        guard case .multipart(let parts) = parsed.root.content else { Issue.record("not multipart"); return }
        #expect(parts.map(\.mediaType) == ["text/plain", "text/html"])
        #expect(parts[1].contentType["charset"] == "UTF-8")
        #expect(parsed.text == Self.japaneseText)
        #expect(parsed.html == outgoing.html)
    }

    @Test("attachments with Japanese names, long and short, round-trip names, types and bytes")
    func attachments() throws {
        var outgoing = mail(to: "taro@example.jp")
        outgoing.html = "<p>請求書を添付します。</p>"
        let pdf = (0..<5_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        outgoing.attachments = [
            .init(filename: "請求書.pdf", mediaType: "application/pdf", content: pdf),
            .init(filename: "2026年12月分 ご利用明細書（株式会社ショップ・エグザンプル）最終版.xlsx",
                  mediaType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", content: Array("表".utf8)),
            .init(filename: "notes.txt", mediaType: "text/plain", content: Array("plain\r\n".utf8)),
        ]
        let (composed, parsed) = try roundTrip(outgoing)
        #expect(parsed.root.mediaType == "multipart/mixed")
        #expect(parsed.text == Self.japaneseText)
        #expect(parsed.html == outgoing.html)
        #expect(parsed.attachments.map(\.filename) == outgoing.attachments.map(\.filename))
        #expect(parsed.attachments.map(\.mediaType) == outgoing.attachments.map(\.mediaType))
        #expect(parsed.attachments.map(\.content) == outgoing.attachments.map(\.content))
        // Folding never splits a token, so only the line naming the 66-character media type is longer.
        #expect(lines(composed.bytes).allSatisfy { $0.count <= 78 || $0.starts(with: "Content-Type: application/vnd.openxml".utf8) })
        #expect(String(decoding: composed.bytes, as: UTF8.self).contains("filename*0*=UTF-8''"))
    }

    @Test("a long ASCII line travels in base64 and comes back whole")
    func longASCIILine() throws {
        let text = String(repeating: "0123456789", count: 200) + "\n"
        var outgoing = mail(to: "ops@example.com", subject: "Log", text: text)
        outgoing.from.name = nil
        outgoing.to[0].name = "Ops"
        let (composed, parsed) = try roundTrip(outgoing)
        #expect(composed.charset == "US-ASCII")
        #expect(lines(composed.bytes).allSatisfy { $0.count <= 998 })
        #expect(sections(composed.bytes).headerLines.contains("Content-Transfer-Encoding: base64"))
        #expect(parsed.text == text)
    }

    @Test("a carrier reply with a line too long for one ISO-2022-JP line (998 octets) goes as UTF-8, every line as written; one that fits stays ISO-2022-JP")
    func longJapaneseLine() throws {
        let sentence = "ご不便をおかけして申し訳ございません。"
        let text = String(repeating: sentence, count: 60) + "\n"
        let (composed, parsed) = try roundTrip(mail(text: text))
        #expect(composed.charset == "UTF-8")
        #expect(lines(composed.bytes).allSatisfy { $0.count <= 998 })
        #expect(parsed.text == text, "no line break the agent did not write")
        let url = "https://shop.example/" + String(repeating: "a", count: 1200) + "\n"
        let (_, withURL) = try roundTrip(mail(text: "こちらをご覧ください。\n" + url))
        #expect(withURL.text == "こちらをご覧ください。\n" + url, "a long link stays whole")

        let fits = String(repeating: sentence, count: 20) + "\n"
        let (short, readBack) = try roundTrip(mail(text: fits))
        #expect(short.charset == "ISO-2022-JP")
        #expect(lines(sections(short.bytes).body).allSatisfy { $0.count <= 998 && endsInASCII($0) })
        #expect(readBack.text == fits)
    }

    @Test("line ends: LF, CRLF and CR in, CRLF out; a last line gets its line break")
    func lineEnds() throws {
        let (composed, parsed) = try roundTrip(mail(subject: "x", text: "one\r\ntwo\nthree\rfour"))
        #expect(parsed.text == "one\ntwo\nthree\nfour\n")
        #expect(!composed.bytes.enumerated().contains { $1 == 0x0A && ($0 == 0 || composed.bytes[$0 - 1] != 0x0D) })
        #expect(composed.bytes.suffix(2) == [0x0D, 0x0A])

        let (_, empty) = try roundTrip(mail(subject: "", text: ""))
        #expect(empty.subject == "")
        #expect(empty.text == "")
    }

    // MARK: Carriers and DKIM

    @Test("carrier domains and their subdomains, nothing that merely looks like one")
    func carriers() {
        #expect(MailComposer.isCarrier("taro@docomo.ne.jp"))
        #expect(MailComposer.isCarrier("Taro@EZweb.ne.jp"))
        #expect(MailComposer.isCarrier("taro@d.vodafone.ne.jp"))
        #expect(MailComposer.isCarrier("taro@t.softbank.ne.jp"))
        #expect(MailComposer.isCarrier("taro@i.softbank.jp"))
        #expect(!MailComposer.isCarrier("taro@softbank.jp"))
        #expect(!MailComposer.isCarrier("taro@notdocomo.ne.jp"))
        #expect(!MailComposer.isCarrier("taro@docomo.ne.jp.example.com"))
        #expect(!MailComposer.isCarrier("taro@example.jp", carrierDomains: []))
    }

    @Test("DKIM relaxed canonicalization: RFC 6376 §3.4.5's example")
    func dkimRelaxed() {
        #expect(DKIMCanonicalization.relaxedHeader(name: "A", value: " X") == "a:X")
        #expect(DKIMCanonicalization.relaxedHeader(name: "B ", value: " Y\t\r\n\tZ  ") == "b:Y Z")
        #expect(DKIMCanonicalization.relaxedBody(Array(" C \r\nD \t E\r\n\r\n\r\n".utf8)) == Array(" C\r\nD E\r\n".utf8))
        #expect(DKIMCanonicalization.relaxedBody([]) == [])
        #expect(DKIMCanonicalization.relaxedBody(Array("x".utf8)) == Array("x\r\n".utf8))

        let (headers, body) = DKIMCanonicalization.split(Array("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n".utf8))
        #expect(headers.map(\.name) == ["A", "B "])
        #expect(headers.map(\.value) == [" X", " Y\t\r\n\tZ  "])
        #expect(headers.map { DKIMCanonicalization.relaxedHeader(name: $0.name, value: $0.value) } == ["a:X", "b:Y Z"])
        #expect(DKIMCanonicalization.relaxedBody(body) == Array(" C\r\nD E\r\n".utf8))
    }
}
