import Foundation
import Testing
@testable import MadoguchiMail

@Suite("Reading raw mail")
struct MailParserTests {
    func mail(_ text: String) -> ParsedMail { ParsedMail(Array(text.utf8)) }

    @Test("folded headers, obsolete white space before the colon, LF or CRLF")
    func headers() {
        for newline in ["\n", "\r\n"] {
            let parsed = mail(["From: Taro <taro@Example.COM>", "Subject : a long", "\tsubject", "", "body"].joined(separator: newline))
            #expect(parsed.from == MailAddress(name: "Taro", address: "taro@example.com"))
            #expect(parsed.subject == "a long\tsubject")
            #expect(parsed.text == "body")
        }
    }

    @Test("encoded words: B and Q, adjacent words joined across a split character, broken ones left as written")
    func encodedWords() {
        // "テスト" in UTF-8 split between two words in the middle of a character.
        let bytes = Array("テスト".utf8)
        let first = Data(bytes[0..<4]).base64EncodedString(), second = Data(bytes[4...]).base64EncodedString()
        #expect(HeaderText.decodeEncodedWords(in: "=?UTF-8?B?\(first)?= =?UTF-8?B?\(second)?=") == "テスト")
        #expect(HeaderText.decodeEncodedWords(in: "=?iso-8859-1?Q?caf=E9_au_lait?=") == "café au lait")
        #expect(HeaderText.decodeEncodedWords(in: "a =?utf-8?q?b?= c") == "a b c")
        #expect(HeaderText.decodeEncodedWords(in: "=?utf-8?B?broken") == "=?utf-8?B?broken")
        #expect(HeaderText.decodeEncodedWords(in: "=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=") == "テスト")
    }

    @Test("a From with a name and no address keeps the name (the address from Sender when there is one); a lone word is still an address")
    func fromWithoutAddress() {
        #expect(mail("From: Taro Yamada\nSubject: x\n\nbody").from == MailAddress(name: "Taro Yamada", address: ""))
        #expect(mail("From: \"=?UTF-8?B?5bGx55SwIOWkqumDjg==?=\"\nSender: desk@shop.example\n\nbody").from
                == MailAddress(name: "山田 太郎", address: "desk@shop.example"))
        #expect(mail("From: MAILER-DAEMON\n\nbody").from == MailAddress(name: nil, address: "MAILER-DAEMON"))
        // To and Cc are lists of recipients: a bare name there is not one.
        #expect(mail("From: a@example.jp\nTo: Undisclosed recipients\n\nbody").to.allSatisfy { !$0.address.isEmpty })
    }

    @Test("encoded words holding raw 8-bit bytes are decoded in their own charset; UTF-7 is decoded")
    func lenientEncodedWords() {
        // Old mailers put Latin-1 bytes straight into a Q word instead of =E9.
        #expect(HeaderText.decode(Array("=?iso-8859-1?Q?Caf".utf8) + [0xE9] + Array("_cr".utf8) + [0xE8] + Array("me?=".utf8)) == "Café crème")
        // Raw UTF-8 inside a word labelled UTF-8, next to raw Shift_JIS outside any word.
        let shiftJIS: [UInt8] = [0x83, 0x65, 0x83, 0x58, 0x83, 0x67]  // テスト
        #expect(HeaderText.decode(shiftJIS + Array(" =?utf-8?Q?".utf8) + Array("日本".utf8) + Array("?=".utf8)) == "テスト 日本")
        // A word that is not well-formed is still left as written, its bytes decoded as the rest.
        #expect(HeaderText.decode(Array("=?utf-8?Q?".utf8) + Array("日本 語?=".utf8)) == "=?utf-8?Q?日本 語?=")
        // UTF-7 (RFC 2152): all ASCII, yet not to be shown as written.
        #expect(HeaderText.decode(Array("=?utf-7?Q?+ZeVnLIqe-?=".utf8)) == "日本語")
        #expect(HeaderText.decode(Array("=?unicode-1-1-utf-7?Q?Hi_Mom_-+Jjo--!?=".utf8)) == "Hi Mom -☺-!")
        #expect(Charset.decode(Array("+ZeVnLIqe-".utf8), label: "UTF-7").text == "日本語")
    }

    @Test("Japanese charsets decode with the extensions carriers and Windows use")
    func japaneseCharsets() {
        // ① ㈱ ～ in CP932
        #expect(Charset.decode([0x87, 0x40, 0x87, 0x8A, 0x81, 0x60], label: "Shift_JIS").text == "①㈱～")
        // テスト in EUC-JP, labelled nothing: detected.
        let euc: [UInt8] = [0xA5, 0xC6, 0xA5, 0xB9, 0xA5, 0xC8, 0xA4, 0xC7, 0xA4, 0xB9]
        #expect(Charset.decode(euc, label: nil).text == "テストです")
        // ISO-2022-JP with NEC row 13 (①) and a missing final ESC ( B.
        #expect(Charset.decode([0x1B, 0x24, 0x42, 0x2D, 0x21], label: "iso-2022-jp").text == "①")
        // Labelled ISO-2022-JP but really Shift_JIS.
        #expect(Charset.decode([0x83, 0x65, 0x83, 0x58, 0x83, 0x67], label: "ISO-2022-JP").text == "テスト")
        // Labelled UTF-8 but really CP932.
        let decoded = Charset.decode([0x83, 0x65, 0x83, 0x58, 0x83, 0x67, 0x82, 0xC5, 0x82, 0xB7], label: "utf-8")
        #expect(decoded.text == "テストです")
        #expect(decoded.defect != nil)
    }

    @Test("other charsets of the world")
    func worldCharsets() {
        #expect(Charset.decode([0xE9], label: "iso-8859-1").text == "é")
        #expect(Charset.decode([0x80], label: "iso-8859-1").text == "€")   // really Windows-1252
        #expect(Charset.decode([0xC1, 0xC1], label: "euc-kr").text == "좋")
        #expect(Charset.decode([0xC4, 0xE3], label: "gb2312").text == "你")
        #expect(Charset.decode([0xA7, 0x41], label: "big5").text == "你")
        #expect(Charset.decode([0xF0], label: "koi8-r").text == "П")
        #expect(Charset.decode([0xFF, 0xFE, 0x42, 0x30], label: "utf-16").text == "あ")
    }

    @Test("base64 with garbage and no padding; quoted-printable with soft breaks and bad escapes")
    func transferEncodings() {
        #expect(TransferEncoding.base64.decode(Array("aGVs!!bG8\n".utf8)) == Array("hello".utf8))
        #expect(TransferEncoding.quotedPrintable.decode(Array("caf=C3=A9 =\r\nau =ZZ lait=\n".utf8)) == Array("café au =ZZ lait".utf8))
    }

    @Test("RFC 2231 continuations and charsets in filenames; encoded words in quoted filenames")
    func filenames() {
        let value = ParameterizedValue(raw: Array("attachment; filename*0*=UTF-8''%E8%A6%8B%E7%A9%8D; filename*1=\".pdf\"".utf8))
        #expect(value["filename"] == "見積.pdf")
        let encoded = ParameterizedValue(raw: Array("application/pdf; name=\"=?UTF-8?B?6KaL56mN?=.pdf\"".utf8))
        #expect(encoded["name"] == "見積.pdf")
    }

    @Test("addresses: groups, comments, quoted names, routes, carrier local parts")
    func addresses() {
        let list = MailAddress.list(Array("Team: a@x.jp, \"Yamada, Taro\" <taro..yamada.@DoCoMo.ne.jp>;, b@y.jp (Bee), <@relay:c@z.jp>".utf8))
        #expect(list.map(\.address) == ["a@x.jp", "taro..yamada.@docomo.ne.jp", "b@y.jp", "c@z.jp"])
        #expect(list[1].name == "Yamada, Taro")
        #expect(list[2].name == "Bee")
        #expect(MailAddress.list(Array("\"Mary Smith: Personal\" <smith@home.example>".utf8)).first?.address == "smith@home.example")
        // A quoted local part keeps its spaces: without them it is another mailbox.
        #expect(MailAddress.list(Array("\"john doe\"@Cust.Example".utf8)).first?.address == "\"john doe\"@cust.example")
        #expect(MailAddress.list(Array("John <\"john  doe\"@cust.example>".utf8)).first?.address == "\"john  doe\"@cust.example")
        #expect(MailAddress.normalize("\"john doe\"@Cust.Example") == "\"john doe\"@cust.example")
        #expect(MailAddress.list(Array("<john doe@cust.example>".utf8)).first?.address == "johndoe@cust.example", "outside quotes, spaces go as before")
    }

    @Test("multipart: nested alternatives, attachments, missing close delimiter")
    func multipart() {
        let text = """
            From: a@x.jp
            Content-Type: multipart/mixed; boundary="outer"

            preamble
            --outer
            Content-Type: multipart/alternative; boundary=inner

            --inner
            Content-Type: text/plain; charset=utf-8

            plain text
            --inner
            Content-Type: text/html; charset=utf-8

            <p>rich</p>
            --inner--
            --outer
            Content-Type: application/pdf; name="a.pdf"
            Content-Transfer-Encoding: base64

            aGVsbG8=
            """
        let parsed = mail(text)
        #expect(parsed.text == "plain text")
        #expect(parsed.html == "<p>rich</p>")
        #expect(parsed.attachments.map(\.filename) == ["a.pdf"])
        #expect(parsed.attachments.first?.content == Array("hello".utf8))
        #expect(parsed.defects.contains("multipart close delimiter missing"))
    }

    @Test("an attached message is one file, with the files inside it (and inside messages nested in it) listed under it")
    func attachedMessageFiles() {
        let forwarded = mail("""
            From: a@example.jp
            Subject: Fwd: invoice
            Content-Type: multipart/mixed; boundary=outer

            --outer
            Content-Type: text/plain

            See the forwarded mail.
            --outer
            Content-Type: message/rfc822

            From: b@example.jp
            Subject: invoice
            Content-Type: multipart/mixed; boundary=inner

            --inner
            Content-Type: text/plain

            Invoice attached.
            --inner
            Content-Type: application/pdf; name=invoice.pdf
            Content-Transfer-Encoding: base64

            JVBERi0xLjQK
            --inner
            Content-Type: message/rfc822

            From: c@example.jp
            Subject: photo
            Content-Type: multipart/mixed; boundary=deepest

            --deepest
            Content-Type: image/png
            Content-Disposition: attachment

            PNGDATA
            --deepest--
            --inner--
            --outer--
            """)
        #expect(forwarded.attachments.count == 1)
        let message = forwarded.attachments.first
        #expect(message?.filename == "invoice.eml")
        #expect(message?.contained == [
            ContainedFile(filename: "invoice.pdf", mediaType: "application/pdf", size: 9),
            ContainedFile(filename: nil, mediaType: "image/png", size: 7),
        ])
    }

    @Test("a multipart whose declared boundary is nowhere in the body is split at the body's own boundary lines")
    func rewrittenBoundary() {
        let broken = mail("""
            From: a@example.jp
            Subject: files
            Content-Type: multipart/mixed; boundary="declared-by-a-relay"

            This is a multi-part message in MIME format.
            --actual
            Content-Type: text/plain

            Two files.
            --actual
            Content-Type: application/octet-stream

            DATA
            --actual--
            """)
        #expect(broken.text.trimmingCharacters(in: .whitespacesAndNewlines) == "Two files.")
        #expect(broken.attachments.map(\.mediaType) == ["application/octet-stream"])
        #expect(broken.defects.contains { $0.contains("not in the body") })
        // A signature's "-- " line is no boundary: the text stays whole.
        let signed = mail("From: a@example.jp\nContent-Type: multipart/mixed; boundary=x\n\nHello\n-- \nTaro\n")
        #expect(signed.text.contains("Hello") && signed.text.contains("Taro"))
    }

    @Test("References keeps its newest hundred ids")
    func longReferences() {
        let ids = (1...1_000).map { "<r\($0)@example.jp>" }.joined(separator: " ")
        let parsed = mail("From: a@example.jp\nReferences: \(ids)\n\nbody\n")
        #expect(parsed.references.count == ParsedMail.maximumReferences)
        #expect(parsed.references.first == "r901@example.jp" && parsed.references.last == "r1000@example.jp")
    }

    @Test("a multipart with no boundary at all is split only at believable boundary lines; otherwise its text is kept whole")
    func missingBoundary() {
        let signed = mail("From: a@example.jp\nContent-Type: multipart/mixed\n\nPlease cancel order 1234.\n-- \nTaro\n")
        #expect(signed.text.contains("Please cancel order 1234.") && signed.text.contains("Taro"), "\(signed.text)")
        let forwarded = mail("From: a@example.jp\nContent-Type: multipart/mixed\n\n返品の件です。\n-----Original Message-----\nFrom: shop\n")
        #expect(forwarded.text.contains("返品の件です。"), "\(forwarded.text)")
        let written = mail("From: a@example.jp\nContent-Type: multipart/mixed\n\nご注文の件\n--part\nContent-Type: text/plain\n\n本文\n--part--\n")
        #expect(written.text.contains("ご注文の件"), "a person's writing before the line is never dropped as a preamble")
        let guessable = mail("From: a@example.jp\nContent-Type: multipart/mixed\n\n--XYZ\nContent-Type: text/plain\n\nhello\n--XYZ\nContent-Type: application/pdf\n\nPDF\n--XYZ--\n")
        #expect(guessable.text.trimmingCharacters(in: .whitespacesAndNewlines) == "hello")
        #expect(guessable.attachments.map(\.mediaType) == ["application/pdf"])
        #expect(guessable.defects.contains { $0.contains("guessed 'XYZ'") })
    }

    @Test("10,000 nested multiparts end at the depth limit without exhausting the stack")
    func deepNesting() {
        var text = "From: a@x.jp\n"
        for level in 0..<10_000 { text += "Content-Type: multipart/mixed; boundary=b\(level)\n\n--b\(level)\n" }
        text += "Content-Type: text/plain\n\ndeep\n"
        let parsed = mail(text)
        #expect(parsed.defects.contains { $0.contains("deeper") })
    }

    @Test("HTML-only mail is rendered to text and kept")
    func htmlOnly() {
        let parsed = mail("From: a@x.jp\nContent-Type: text/html\n\n<html><head><style>p{}</style></head><body><p>Hello&nbsp;&amp; welcome</p><br>Line 2</body></html>")
        #expect(parsed.text == "Hello & welcome\n\nLine 2")
        #expect(parsed.html != nil)
    }

    @Test("file names: path separators, control and bidirectional characters made harmless; the rest kept")
    func safeFileNames() {
        #expect(SafeFileName.clean("../../etc/passwd") == ".._.._etc_passwd")
        #expect(SafeFileName.clean("invoice\u{202E}fdp.exe") == "invoice_fdp.exe")
        #expect(SafeFileName.clean("a\u{1B}[31mb\r\nc\u{7F}") == "a_[31mb__c_")
        #expect(SafeFileName.clean("請求書 2026年12月👨‍👩‍👧.pdf") == "請求書 2026年12月👨‍👩‍👧.pdf")
        let parsed = mail("From: a@x.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe\n\nxx\n--b--\n")
        #expect(parsed.attachments.first?.filename == "invoice_fdp.exe")
        // A forwarded mail without a file name is named after its subject, cleaned the same way.
        let forwarded = mail("From: a@x.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nfw\n--b\nContent-Type: message/rfc822\n\nSubject: =?UTF-8?B?\(Data("請求\u{202E}fdp.exe".utf8).base64EncodedString())?=\nFrom: c@x.jp\n\nbody\n--b--\n")
        #expect(forwarded.attachments.first?.filename == "請求_fdp.exe.eml", "\(forwarded.attachments.map(\.filename))")
    }

    @Test("HTML to text keeps what a browser shows: a head left open ends at the body, a '<' that opens no tag is text")
    func htmlTextKeepsTheWords() {
        #expect(HTMLText.render("<html><head><meta charset=utf-8><body><p>返品希望です</p>") == "返品希望です")
        #expect(HTMLText.render("<html><head><title>注文<body><p>届きません</p>") == "届きません")
        #expect(HTMLText.render("<p>数量<5個の場合、送料は?</p><p>よろしく</p>") == "数量<5個の場合、送料は?\nよろしく")
        #expect(HTMLText.render("<p>a < b かつ c>d</p>") == "a < b かつ c>d")
        #expect(HTMLText.render("<p>最後に <だけ") == "最後に <だけ")
        #expect(HTMLText.render("<p>x</p><") == "x\n<")
        // Still dropped: scripts, styles, and a head that closes.
        #expect(HTMLText.render("<head><style>p{}</style></head><script>x<y</script><p>本文</p>") == "本文")
        // Many '<' and no '>' take linear time (the fuzzer's kind of input).
        #expect(HTMLText.render(String(repeating: "<a", count: 50_000)).count == 100_000)
    }

    @Test("the reply is separated from quoted history, Japanese clients included", arguments: [
        ("ありがとうございます。\n\n2024年1月5日(金) 10:00 山田 <y@example.jp>:\n> 先日の件\n> よろしく", "ありがとうございます。"),
        ("了解です。\n\n-----Original Message-----\nFrom: support@example.jp\nSent: Friday\n本文", "了解です。"),
        ("確認しました。\n\n差出人: サポート <s@example.jp>\n送信日時: 2024年1月5日 10:00\n宛先: y@example.jp\n件名: Re: 注文", "確認しました。"),
        ("Thanks!\n\nOn Fri, Jan 5, 2024 at 10:00 AM Support <s@example.com> wrote:\n> hello", "Thanks!"),
        ("Great.\n\n-- \nTaro Yamada\nACME", "Great."),
    ])
    func replySplitting(_ text: String, _ visible: String) {
        #expect(ReplySplitter.split(text).visible == visible)
        #expect(!ReplySplitter.split(text).quoted.isEmpty)
    }

    @Test("the customer's own text is never taken for a signature or a header block", arguments: [
        "I need:\n-Refund\n-Replacement cable",
        "My booking:\nFrom: Tokyo\nTo: Osaka\nPlease change it.",
    ])
    func ownTextStays(_ text: String) {
        #expect(ReplySplitter.split(text).visible == text)
    }

    @Test("a lone \"-Name\" still ends the text, and an Outlook block naming an address or a date still starts the history", arguments: [
        ("Thanks for the help.\n-Taro", "Thanks for the help."),
        ("了解です。\n\nFrom: Support <s@example.jp>\nTo: y@example.jp\n本文", "了解です。"),
        ("了解です。\n\nFrom: Support\nSent: Friday, 5 January 2024\nTo: Yamada\n本文", "了解です。"),
    ])
    func signaturesAndBlocksStill(_ text: String, _ visible: String) {
        #expect(ReplySplitter.split(text).visible == visible)
    }

    @Test("bounces, delivery reports and auto-replies are told apart")
    func classification() {
        let dsn = """
            From: MAILER-DAEMON@mx.example.jp
            To: support@example.jp
            Subject: Undelivered Mail Returned to Sender
            Content-Type: multipart/report; report-type=delivery-status; boundary=b

            --b
            Content-Type: text/plain

            I'm sorry to have to inform you that your message could not be delivered.
            --b
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.example.jp

            Final-Recipient: rfc822; gone@docomo.ne.jp
            Action: failed
            Status: 5.1.1
            Diagnostic-Code: smtp; 550 Unknown user gone@docomo.ne.jp

            --b
            Content-Type: text/rfc822-headers

            Message-ID: <reply-1@madoguchi>
            To: gone@docomo.ne.jp
            --b--
            """
        let bounce = mail(dsn)
        #expect(bounce.classification == .bounce)
        #expect(bounce.deliveryReport?.recipients.first?.address == "gone@docomo.ne.jp")
        #expect(bounce.deliveryReport?.recipients.first?.reason == "userunknown")
        #expect(bounce.deliveryReport?.recipients.first?.isHardBounce == true)
        #expect(bounce.deliveryReport?.originalMessageID == "reply-1@madoguchi")
        #expect(mail("From: a@x.jp\nAuto-Submitted: auto-replied\nSubject: 不在のお知らせ\n\n休暇中です").classification == .autoReply)
        #expect(mail("From: a@x.jp\nSubject: 荷物が届かない\n\n届かないのですが").classification == .customer)
    }

    @Test("a customer's subject that merely begins with an auto-reply word is a customer's mail; a responder's label or reply is not")
    func autoReplySubjects() {
        // New mails from customers: nothing but the subject, which a responder would write as a label.
        for subject in ["自動返信メールが届きません", "不在票が入っていましたが再配達できますか", "自動送信メールが来ない", "Vacation rental question",
                        "Auto-reply not received for order 1234", "【至急】自動返信が来ない", "【不在票】再配達をお願いします",
                        "再配達希望（不在票あり）", "【自動送信メールが届きません】", "[Vacation rental] question"] {
            #expect(mail("From: hanako@example.jp\nSubject: \(subject)\n\nよろしくお願いします").classification == .customer, "\(subject)")
        }
        // Responders: a label anywhere, or the word opening a reply to another mail.
        for subject in ["【自動返信】お問い合わせありがとうございます", "[自動応答] 不在にしております", "Re: ご注文の件（自動返信）", "不在: Re: ご注文の件",
                        "Automatic reply: Your order", "Out of Office: Re: [#12]", "自動返信：ご注文の件"] {
            #expect(mail("From: a@x.jp\nSubject: \(subject)\n\n休暇中です").classification == .autoReply, "\(subject)")
        }
        #expect(mail("From: a@x.jp\nIn-Reply-To: <reply-1@shop.example>\nSubject: 不在のお知らせ\n\n休暇中です").classification == .autoReply)
    }

    @Test("a customer forwarding a bounce, its delivery-status part kept, is a customer asking for help; the report itself is a bounce")
    func forwardedBounce() {
        let status = "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; friend@example.net\nAction: failed\nStatus: 5.1.1\n"
        let forwarded = """
            From: yuki@example.org
            To: support@shop.example
            Subject: Fwd: Undelivered Mail Returned to Sender
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="b"

            --b
            Content-Type: text/plain; charset=utf-8

            注文確認メールを友人に転送したら戻ってきました。どうすればよいですか？
            --b
            \(status)
            --b--
            """
        #expect(mail(forwarded).classification == .customer)
        let report = forwarded.replacingOccurrences(of: "From: yuki@example.org", with: "From: MAILER-DAEMON@mx.example.net")
            .replacingOccurrences(of: "Subject: Fwd: ", with: "Subject: ")
            .replacingOccurrences(of: "multipart/mixed; boundary", with: "multipart/report; report-type=delivery-status; boundary")
        #expect(mail(report).classification == .bounce)
    }

    @Test("a customer's complaint with a bounce-like subject and an attached mail is not a bounce for a date like 2025.1.15")
    func complaintWithAttachedMail() {
        let complaint = """
            From: hanako@example.jp
            Subject: 注文した商品が届きませんでした
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="b"

            --b
            Content-Type: text/plain; charset=utf-8

            2025.1.15に注文しましたが、まだ届きません。注文番号 A-550 です。
            --b
            Content-Type: message/rfc822

            From: shop@shop.example
            To: hanako@example.jp
            Subject: ご注文ありがとうございます
            Message-ID: <order-1@shop.example>

            ご注文を承りました。
            --b--
            """
        #expect(mail(complaint).classification == .customer)
        #expect(BounceText.hasFailureCode("Remote server replied: 550 5.1.1 <a@b.example>: user unknown"))
        #expect(BounceText.hasFailureCode("554-rejected"))
        #expect(!BounceText.hasFailureCode("2025.1.15 注文 A-550 と 15501 と 5.1.10"))
    }

    @Test("an SPF or DMARC refusal worded 'Recipient address rejected' is our mail refused, not the customer's address gone")
    func policyRefusalIsNotUserUnknown() {
        let spf = BounceText.reason(status: "5.7.23", diagnostic: "550 5.7.23 <taro@example.jp>: Recipient address rejected: Message rejected due to: SPF fail - not authorized.", text: "")
        #expect(spf == "authfailure")
        let dmarc = BounceText.reason(status: "5.7.1", diagnostic: "550 5.7.1 Recipient address rejected: DMARC policy violation", text: "")
        #expect(dmarc == "authfailure")
        #expect(BounceText.reason(status: "5.1.1", diagnostic: "550 5.1.1 <taro@example.jp>: Recipient address rejected: User unknown in local recipient table", text: "") == "userunknown")
    }

    @Test("format=flowed (RFC 3676): soft breaks joined, DelSp's space dropped, quote depths and the signature kept")
    func formatFlowed() {
        let japanese = ParsedMail(Array("From: a@example.jp\r\nContent-Type: text/plain; charset=UTF-8; format=flowed; delsp=yes\r\n\r\nご注文の商品が届いていま \r\nせん。\r\n\r\n> 先日の \r\n> お返事です。\r\n-- \r\n山田\r\n".utf8))
        #expect(japanese.text == "ご注文の商品が届いていません。\n\n> 先日のお返事です。\n-- \n山田\n")
        // A flowed line before the signature separator does not take the separator in.
        let signed = ParsedMail(Array("From: a@example.jp\nContent-Type: text/plain; format=flowed; delsp=yes\n\nよろしくお願いしま \n-- \n山田\n".utf8))
        #expect(signed.text == "よろしくお願いしま\n-- \n山田\n")
        let english = ParsedMail(Array("From: a@example.jp\nContent-Type: text/plain; format=flowed\n\nThe parcel has not \narrived yet.\n From the stuffed line.\n".utf8))
        #expect(english.text == "The parcel has not arrived yet.\nFrom the stuffed line.\n")
        // Without format=flowed a trailing space is text.
        #expect(ParsedMail(Array("From: a@example.jp\n\nline one \nline two\n".utf8)).text == "line one \nline two\n")
    }

    @Test("ISO-2022-JP under an ASCII, UTF-8, Shift_JIS or Latin-1 label is read as ISO-2022-JP; a comment after a charset is no part of it")
    func mislabelledJIS() {
        let jis: [UInt8] = [0x1B, 0x24, 0x42, 0x46, 0x7C, 0x4B, 0x5C, 0x1B, 0x28, 0x42]
        for label in ["us-ascii", "utf-8", "shift_jis", "euc-jp", "iso-8859-1"] {
            let mail = ParsedMail(Array("From: a@example.jp\nContent-Type: text/plain; charset=\(label)\n\n".utf8) + jis + [0x0A])
            #expect(mail.text == "日本\n", "\(label)")
        }
        let latin = ParsedMail(Array("From: a@example.jp\nContent-Type: text/plain; charset=iso-8859-1 (Latin)\n\nCaf".utf8) + [0xE9, 0x0A])
        #expect(latin.text == "Café\n")
    }

    @Test("EUC-JP labelled Shift_JIS is read as EUC-JP, and the other way round; half-width katakana in Shift_JIS stay as written")
    func mislabelledJapanese() {
        let sentence = "商品がまだ届いていません。確認してください。"
        let euc: [UInt8] = [
            0xBE, 0xA6, 0xC9, 0xCA, 0xA4, 0xAC, 0xA4, 0xDE, 0xA4, 0xC0, 0xC6, 0xCF, 0xA4, 0xA4, 0xA4, 0xC6, 0xA4, 0xA4, 0xA4, 0xDE, 0xA4, 0xBB,
            0xA4, 0xF3, 0xA1, 0xA3, 0xB3, 0xCE, 0xC7, 0xA7, 0xA4, 0xB7, 0xA4, 0xC6, 0xA4, 0xAF, 0xA4, 0xC0, 0xA4, 0xB5, 0xA4, 0xA4, 0xA1, 0xA3,
        ]
        let sjis: [UInt8] = [
            0x8F, 0xA4, 0x95, 0x69, 0x82, 0xAA, 0x82, 0xDC, 0x82, 0xBE, 0x93, 0xCD, 0x82, 0xA2, 0x82, 0xC4, 0x82, 0xA2, 0x82, 0xDC, 0x82, 0xB9,
            0x82, 0xF1, 0x81, 0x42, 0x8A, 0x6D, 0x94, 0x46, 0x82, 0xB5, 0x82, 0xC4, 0x82, 0xAD, 0x82, 0xBE, 0x82, 0xB3, 0x82, 0xA2, 0x81, 0x42,
        ]
        for (bytes, label) in [(euc, "shift_jis"), (sjis, "euc-jp"), (euc, "euc-jp"), (sjis, "shift_jis")] {
            let mail = ParsedMail(Array("From: a@example.jp\nContent-Type: text/plain; charset=\(label)\n\n".utf8) + bytes + [0x0A])
            #expect(mail.text == sentence + "\n", "\(label)")
        }
        let kana: [UInt8] = [0xC3, 0xDE, 0xA8, 0xBD, 0xB6, 0xB3, 0xDD, 0xC4, 0xBE, 0xB0, 0xD9]   // ﾃﾞｨｽｶｳﾝﾄｾｰﾙ
        let halfWidth = ParsedMail(Array("From: a@example.jp\nContent-Type: text/plain; charset=shift_jis\n\n".utf8) + kana + [0x0A])
        #expect(halfWidth.text == "ﾃﾞｨｽｶｳﾝﾄｾｰﾙ\n")
    }

    @Test("an ARF complaint names the mail complained of, so it can join that mail's ticket")
    func feedbackReportNamesOurMail() {
        let arf = """
            From: abuse@isp.example
            Subject: complaint
            MIME-Version: 1.0
            Content-Type: multipart/report; report-type=feedback-report; boundary=f

            --f
            Content-Type: text/plain

            This is an abuse report
            --f
            Content-Type: message/feedback-report

            Feedback-Type: abuse
            User-Agent: x/1
            Version: 1
            --f
            Content-Type: message/rfc822

            From: support@shop.example
            To: taro@isp.example
            Message-ID: <reply-9@shop.example>
            Subject: Re: ご注文

            ご案内です。
            --f--
            """
        let report = mail(arf)
        #expect(report.classification == .feedbackReport)
        #expect(report.deliveryReport?.originalMessageID == "reply-9@shop.example")
        #expect(report.deliveryReport?.recipients.isEmpty == true)
    }

    @Test("nothing recognisable as a mail is flagged, never a crash", arguments: ["", "just some words\nand more", "\u{0}\u{0}\u{0}"])
    func unreadable(_ text: String) {
        #expect(mail(text).isUnreadable)
    }

    @Test("the byte-level helpers answer as the Foundation calls they replace")
    func byteHelpersAgreeWithFoundation() {
        let texts = ["", " ", "\n\t \u{3000}", "  本文\n\n", "\u{85}a\u{2028}", "\u{A0}b c\u{202F}", "x", "\r\n本文 \u{200B}", "e\u{301} \n"]
        for text in texts {
            #expect(text.trimmingWhitespaceAndNewlines() == text.trimmingCharacters(in: .whitespacesAndNewlines), "\(Array(text.unicodeScalars))")
            #expect(text.trimmingWhitespace() == text.trimmingCharacters(in: .whitespaces), "\(Array(text.unicodeScalars))")
        }
        // Every scalar Foundation trims, and only those, in both sets.
        let differing = (0..<0x110000).compactMap(Unicode.Scalar.init).filter { scalar in
            ((String(scalar) + "a").trimmingWhitespaceAndNewlines() == "a") != CharacterSet.whitespacesAndNewlines.contains(scalar)
                || (("a" + String(scalar)).trimmingWhitespace() == "a") != CharacterSet.whitespaces.contains(scalar)
        }
        #expect(differing.isEmpty, "\(differing.prefix(10))")
        let lines = ["Received: from x", "RECEIVED:", "received", "Subject: 件名", "Ｓubject:", "\u{212A}ey:", "to:", "To", "Message-ID: <a>"]
        for line in lines {
            for prefix in ["received:", "subject:", "to:", "key:", "message-id:"] {
                #expect(line.hasASCIIPrefixIgnoringCase(prefix) == line.lowercased().hasPrefix(prefix) || line.hasPrefix("\u{212A}"), "\(line) \(prefix)")
            }
        }
        // The Kelvin sign lowercases to an ASCII k; no prefix the parser looks for has one.
        #expect(!"\u{212A}ey:".hasASCIIPrefixIgnoringCase("key:"))
        let bounce = "Delivery failed.\n\n----- Original message -----\nReceived: from a\nSubject: x\n"
        #expect(FailedRecipients.errorPart(of: bounce) == "Delivery failed.\n\n")
        #expect(FailedRecipients.inlineOriginalHeaders(in: bounce)?["Subject"] == "x")
        #expect(FailedRecipients.errorPart(of: "----- Original message -----\nno marker on the first line") == "----- Original message -----\nno marker on the first line")
    }
}

@Suite("Mail dates")
struct MailDateTests {
    @Test("RFC 5322 dates, obsolete zones and two-digit years", arguments: [
        ("Fri, 21 Nov 1997 09:55:06 -0600", 880_127_706.0),
        ("21 Nov 97 09:55:06 GMT", 880_106_106.0),
        ("Thu, 30 Aug 2012 14:49:20 +0900", 1_346_305_760.0),
        ("Thu, 30 Aug 2012 14:49 +0900 (JST)", 1_346_305_740.0),
    ])
    func parses(_ text: String, _ epoch: Double) {
        #expect(MailDate.parse(text)?.timeIntervalSince1970 == epoch)
    }

    @Test("nonsense is no date", arguments: [
        "", "yesterday", "32 Nov 1997 10:00:00 +0000", "1 Foo 2000 10:00",
        "Sat, 1 Jan 300000 00:00:00 +0000", "Sat, 1 Jan 10000 00:00:00 +0000", "1 Jan 99999999999999999999 00:00 +0000",
        "Sat, 1 Jan -300000 00:00:00 +0000", "1 Jan -5 00:00 +0000", "1 Jan +2000 00:00 +0000",
    ])
    func refuses(_ text: String) {
        #expect(MailDate.parse(text) == nil)
    }
}

/// Inputs that once made the reader's work grow with the square of their size: each is a few MB at
/// most, within the gateway's limit, and must be read in about the time its size takes. The time
/// limit only stops a run that would otherwise take hours; nothing here measures speed.
@Suite("Pathological mail is read in time proportional to its size", .timeLimit(.minutes(2)))
struct PathologicalMailTests {
    @Test("a boundary that decodes to a line feed (encoded word or RFC 2231 escape) is no boundary, never a crash")
    func lineFeedBoundary() {
        for header in [#"boundary="=?utf-8?Q?=0A?=""#, "boundary*=%0A"] {
            let mail = ParsedMail(Array("Content-Type: multipart/mixed; \(header)\n\n--\n--\nbody\n".utf8))
            #expect(!mail.isUnreadable, "\(header)")
        }
    }

    @Test("a field of encoded words that never close")
    func unclosedEncodedWords() {
        let subject = String(repeating: "=?a?Q?x", count: 300_000)
        let mail = ParsedMail(Array("From: a@example.jp\nSubject: \(subject)\n\nbody\n".utf8))
        #expect(mail.subject?.utf8.count == subject.utf8.count)
        #expect(HeaderText.decode(Array((String(repeating: "=?a?Q?x", count: 300_000) + " ?=").utf8)).hasPrefix("=?a?Q?x"))
    }

    @Test("a field of encoded words naming no encoding there is, closed once at its end")
    func unknownEncodingLetters() {
        let subject = String(repeating: "=?cs?X?x", count: 125_000) + "?="
        let mail = ParsedMail(Array("From: a@example.jp\nSubject: \(subject)\n\nbody\n".utf8))
        #expect(mail.subject?.utf8.count == subject.utf8.count)
        #expect(HeaderText.decode(Array(("=?cs?X?x " + "=?utf-8?B?5a6J?=").utf8)) == "=?cs?X?x 安")
    }

    @Test("a multipart of a hundred thousand parts side by side keeps the limit's worth and the rest as raw bytes")
    func wideMultipart() {
        let pieces = String(repeating: "--b\nContent-Type: a/b\n\nx\n", count: 100_000)
        let mail = ParsedMail(Array("From: a@example.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nご注文の件です。\n\(pieces)--b--\n".utf8))
        #expect(mail.text.contains("ご注文の件です。"))
        #expect(mail.attachments.count < 2_000)
        #expect(mail.attachments.last.map { $0.content.count > 1_000_000 } == true)
        #expect(mail.defects.contains { $0.contains("wider than the limits") })
    }

    @Test("a body of a million blank lines before its text")
    func leadingBlankLines() {
        let split = ReplySplitter.split(String(repeating: "\n", count: 1_000_000) + "ご注文の件です。")
        #expect(split.visible == "ご注文の件です。")
    }

    @Test("a long address followed by a million colons")
    func colonsAfterAnAddress() {
        let field = String(repeating: "a", count: 500_000) + "@example.jp" + String(repeating: ":", count: 500_000)
        _ = MailAddress.list(Array(field.utf8))
        #expect(MailAddress.list(Array("Team: taro@example.jp, hanako@example.jp;".utf8)).map(\.address) == ["taro@example.jp", "hanako@example.jp"])
    }
}
