import Testing
@testable import Madoguchi

@Suite("Send guards on a reply's text")
struct SendGuardTests {
    @Test("leftover placeholders are found with their line and column", arguments: [
        ("{{customer.name}} 様", "{{customer.name}}", 1, 1),
        ("山田様\nご注文番号●●の件ですが", "●●", 2, 6),
        ("お届け日は○○月○○日です", "○○", 1, 6),
        ("担当：＊＊＊", "＊＊＊", 1, 4),
        ("Dear [NAME],", "[NAME]", 1, 6),
        ("Order XX has shipped", "XX", 1, 7),
        ("【お客様名】様", "【お客様名】", 1, 1),
        ("ご注文番号：【注文番号】\nお届け予定です", "【注文番号】", 1, 7),
        ("【商品名】の発送が遅れております", "【商品名】", 1, 1),
        ("担当：＊＊＊＊＊", "＊＊＊＊＊", 1, 4),
        ("［お名前］様", "［お名前］", 1, 1),
        ("[お名前]様", "[お名前]", 1, 1),
        ("（お客様名）様", "（お客様名）", 1, 1),
        ("＜宛名＞ 様", "＜宛名＞", 1, 1),
        ("【顧客名】様", "【顧客名】", 1, 1),
        ("***様", "***", 1, 1),
        ("返金額は××円です", "××", 1, 5),
        ("〇〇様", "〇〇", 1, 1),
        ("｛｛お名前｝｝ 様", "｛｛お名前｝｝", 1, 1),
        ("﹛﹛お名前﹜﹜ 様", "﹛﹛お名前﹜﹜", 1, 1),
        ("注文番号ＸＸ", "ＸＸ", 1, 5),
        ("お届け先：■■県", "■■", 1, 6),
        ("> お客様のご質問\n担当：●●", "●●", 2, 4),
        ("> お客様のご質問\r\n担当：●●", "●●", 2, 4),
        ("> お客様のご質問\r担当：●●", "●●", 2, 4),
        ("ご注文の△△について", "△△", 1, 5),
        ("お届け予定日：YYYY年MM月DD日", "YYYY年", 1, 8),
        ("発送日 YYYY/MM/DD", "YYYY/MM/DD", 1, 5),
        ("発送日 yyyy/mm/dd", "yyyy/mm/dd", 1, 5),
        ("○月○日に発送いたします", "○月○日", 1, 1),
        ("お届け日は△月△日です", "△月△日", 1, 6),
        ("お届けは ● 月 ● 日です", "● 月 ● 日", 1, 6),
        ("第●回 抽選のご案内", "第●", 1, 1),
        ("返金額：●円", "●", 1, 5),
        ("{{customer.name} 様", "{{", 1, 1),
        // A template's blank on a line of its own, under its label, is no divider.
        ("山田様\n\nご注文番号\n●●●●●●●●\nの商品は発送済みです。", "●●●●●●●●", 4, 1),
        ("山田様\n\n担当者直通番号：\n●●●-●●●●-●●●●\nまでご連絡ください。", "●●●", 4, 1),
        ("山田様\n\n返金額\n＊＊＊＊＊\n円となります。", "＊＊＊＊＊", 4, 1),
        ("山田様\n\nご注文番号\n××××-××××\nにつきまして", "××××", 4, 1),
        ("山田様\nご注文番号：\n　○○○○○○○○○○○○\n", "○○○○○○○○○○○○", 3, 2),
        ("返金額\n＊＊＊＊＊＊＊＊＊＊\n円となります。", "＊＊＊＊＊＊＊＊＊＊", 2, 1),
        ("【送り状番号】\n●●●●●●●●●●●●\n発送いたしました。", "●●●●●●●●●●●●", 2, 1),
        ("ご注文番号 {{order.\nnumber}} の件", "{{", 1, 7),
        ("{お名前}様", "{お名前}", 1, 1),
        ("＿＿＿様\nご注文ありがとうございます", "＿＿＿", 1, 1),
        ("お届け日：＿＿月＿＿日", "＿＿", 1, 6),
        ("注文番号： ＿＿＿＿ の件", " ＿＿＿＿", 1, 6),
        ("xx様 ご注文の件", "xx", 1, 1),
        ("ｘｘ様", "ｘｘ", 1, 1),
        ("○様\nお問い合わせありがとうございます", "○", 1, 1),
        ("○ ○様", "○ ○", 1, 1),
        ("10月○日にお届けします", "○日", 1, 4),
        ("お届けは十二月〇日です", "〇日", 1, 8),
        ("12月 ● 日着", " ● 日", 1, 4),
        ("○月10日に発送いたします", "○月10日", 1, 1),
        ("○日(月)にお届けします", "○日(月)", 1, 1),
        ("〇月二〇日に発送します", "〇月二〇日", 1, 1),
        ("二〇〇〇年創業の当店より●●様へ", "●●", 1, 13),
        ("一〇〇●●円", "〇〇●●", 1, 2),
    ])
    func placeholders(_ body: String, _ text: String, _ line: Int, _ column: Int) {
        let findings = SendGuard.check(body: body, attachmentCount: 1)
        let placeholder = findings.first { $0.kind == .leftoverPlaceholder }
        #expect(placeholder?.text == text)
        #expect(placeholder?.line == line)
        #expect(placeholder?.column == column)
    }

    @Test("ordinary text passes", arguments: [
        "山田 花子 様\n\nお問い合わせありがとうございます。\n商品は本日発送いたしました。",
        "Dear Hanako,\n\nYour order 12345 (XXL size) has shipped. Reply with [1] or [2].",
        "●ご注文内容\n・Tシャツ ×1",
        "山田様\n\n> 型番XX-100の○○色はありますか\n＞ ●●までにほしいです\n\n在庫がございます。",
        "カード番号 ****1234 でお支払いいただきました。",
        "山田様\r\n\r\n> 型番XX-100の○○色はありますか\r\n\r\n在庫がございます。",
        "MMの件、DDR4メモリ、YYYYMMDD形式のファイル名",
        "型番 XX-100 の後継品です。",
        "●日時：12月1日\n●個人情報について\n○ 在庫あり\n二〇二六年一〇月一〇日 発送",
        "山田様\n\n__________\nショップサポート\n＿＿＿＿＿＿＿＿\nTEL 03-1234-5678 (Xbox, XXL)",
        "●さまざまなお支払い方法に対応しております\n○殿堂入り商品のご案内\n○ 様式をダウンロード",
        "在庫\nS　M　L\n○　○　×",
        "弊社は二〇〇〇年創業です。一〇〇円のクーポンと一〇〇〇ポイントを差し上げます。",
        "二〇日(月)に発送、一〇月一〇日(土)着の予定です。",
        // A shop mail's layout: labels with their values, and signature frames.
        "【ご注文番号】12345-678\n【お名前】山田 花子 様\n【商品名】Tシャツ\n【お届け日付】5月20日",
        "＊＊＊＊＊＊＊＊＊＊\nショップサポート\n＊＊＊＊＊＊＊＊＊＊",
        "■□■□■□■□■□\nTEL 03-1234-5678\n■□■□■□■□■□",
        // A shop's name under its frame may begin as a sentence goes on (日本…, はーと…); a rule of five.
        "＊＊＊＊＊＊＊＊＊＊＊＊\n日本茶専門店 みどり屋\n＊＊＊＊＊＊＊＊＊＊＊＊",
        "■■■■■■■■■■■■\nはーと雑貨店\n■■■■■■■■■■■■",
        "-----\nショップサポート\n=====",
        "山田商店（株）様\nいつもお世話になっております。",
    ])
    func clean(_ body: String) {
        #expect(SendGuard.check(body: body, attachmentCount: 0).isEmpty)
    }

    @Test("with the customer's words known, a quoted line's marker is theirs only if they wrote it")
    func quotedBlanks() {
        let body = "山田様\n> 型番XX-100の○○色はありますか\n＞お届け予定日：●●月●●日"
        #expect(SendGuard.check(body: body, attachmentCount: 0).isEmpty, "not known: every quoted line is theirs")
        let findings = SendGuard.check(body: body, attachmentCount: 0, customerWords: "型番XX-100の○○色はありますか")
        #expect(!findings.isEmpty && Set(findings.map(\.line)) == [3], "\(findings)")
    }

    @Test("every finding is listed, not just the first")
    func allFindings() {
        let findings = SendGuard.check(body: "{{customer.name}} 様\n●●の件、添付の通りです。", attachmentCount: 0)
        #expect(findings.map(\.kind) == [.leftoverPlaceholder, .leftoverPlaceholder, .missingAttachment])
    }

    @Test("an empty body, a mention of an attachment without one, and configured warning words")
    func otherFindings() {
        #expect(SendGuard.check(body: " \n\t", attachmentCount: 0).map(\.kind) == [.emptyBody])
        #expect(SendGuard.check(body: "Please see the attached invoice.", attachmentCount: 0).map(\.kind) == [.missingAttachment])
        #expect(SendGuard.check(body: "Please see the attached invoice.", attachmentCount: 1).isEmpty)
        #expect(SendGuard.check(body: "要確認：返金額", attachmentCount: 0, extraWarningWords: ["要確認"]).first?.text == "要確認")
        #expect(SendGuard.check(body: "要確認：返金額", attachmentCount: 0, extraWarningWords: ["要確認"]).map(\.kind) == [.warningWord])
        // Whatever its case or width.
        #expect(SendGuard.check(body: "返金額 todo", attachmentCount: 0, extraWarningWords: ["TODO"]).first?.text == "todo")
        #expect(SendGuard.check(body: "返金額 ＴＯＤＯ", attachmentCount: 0, extraWarningWords: ["TODO"]).first?.text == "ＴＯＤＯ")
        #expect(SendGuard.checkSubject("Todo: ご注文の件", extraWarningWords: ["TODO"]).first?.kind == .warningWord)
    }

    @Test("an attachment the customer is asked for or sent is not one the reply forgot; ours is", arguments: [
        ("破損箇所の写真を添付してご返信ください。", false),
        ("ご添付いただいた写真を拝見しました。", false),
        ("写真を添付の上、ご返信ください。", false),
        ("領収書を添付いただければ幸いです。", false),
        ("Please attach a photo of the damage.", false),
        ("Thank you for the photo you attached.", false),
        ("資料を添付してお送りします。", true),
        ("添付ファイルをご確認ください。", true),
        ("別添の資料をご覧ください。", true),
        ("I attach the invoice.", true),
        ("Please see the attached invoice.", true),
        ("添付のうえご返信ください。", false),
        ("添付して、ご返信ください。", false),
        ("写真を添付してメールでお送りください。", false),
        ("Please find attached the invoice.", true),
        ("請求書を添付しておりますのでご確認ください。", true),
        ("明細を添付させていただきます。", true),
        ("領収書を添付して送付させていただきます。", true),
        ("資料を添付のうえ送付させていただきます。", true),
        ("見積書を添付して、ご確認いただければと存じます。", true),
        ("資料を添付してお送りしたので、ご確認ください。", true),
        ("Thank you for your order. Attached is your receipt.", true),
        ("Your attachment arrived safely.", false),
        // The customer's file that did not arrive is no file of ours.
        ("お写真が添付されていないようでしたので、再度お送りいただけますでしょうか。", false),
        ("写真が添付されていないようでした。", false),
        ("前回のメールには添付がございませんでした。", false),
        ("添付ファイルが見当たりませんでした。", false),
        ("恐れ入りますが、添付漏れかと存じます。", false),
        ("画像の添付がなかったため、確認できておりません。", false),
        ("添付されておりませんでした。", false),
        // Ours still is.
        ("添付されております資料をご確認ください。", true),
        ("添付の請求書をご確認ください。", true),
    ])
    func attachmentMentions(_ body: String, _ flagged: Bool) {
        #expect(SendGuard.check(body: body, attachmentCount: 0).contains { $0.kind == .missingAttachment } == flagged)
    }

    @Test("a subject is checked for placeholders and warning words too")
    func subjects() {
        #expect(SendGuard.checkSubject("●●様 お問い合わせありがとうございます").first?.text == "●●")
        #expect(SendGuard.checkSubject("{{お客様名}}様へのご案内").first?.kind == .leftoverPlaceholder)
        #expect(SendGuard.checkSubject("要確認 ご注文の件", extraWarningWords: ["要確認"]).first?.text == "要確認")
        #expect(SendGuard.checkSubject("Re: ご注文の件 [#1234]").isEmpty)
        #expect(SendGuard.checkSubject("【ご注文番号：12345】発送のご案内").isEmpty)
    }

    @Test("an attached file's name is checked as a subject is")
    func fileNames() {
        #expect(SendGuard.checkFileName("○○様_お見積書.pdf").first?.text == "○○")
        #expect(SendGuard.checkFileName("{{customer.name}}_請求書.pdf").first?.kind == .leftoverPlaceholder)
        #expect(SendGuard.checkFileName("下書き_請求書.pdf", extraWarningWords: ["下書き"]).first?.text == "下書き")
        #expect(SendGuard.checkFileName("山田様_お見積書.pdf").isEmpty)
    }

    @Test("the greeting's name is read from the opening: its first line, or a later one ending with the honorific")
    func greetings() {
        #expect(SendGuard.greetedName(in: "株式会社サンプル\n佐藤 次郎 様\n\n本文")?.name == "佐藤次郎")
        #expect(SendGuard.greetedName(in: "株式会社サンプル\n佐藤 次郎 様\n\n本文")?.line == 2)
        #expect(SendGuard.greetedName(in: "株式会社サンプル 営業部 佐藤 次郎 様")?.name == "佐藤次郎")
        #expect(SendGuard.greetedName(in: "(株)サンプル\n佐藤様")?.name == "佐藤")
        #expect(SendGuard.greetedName(in: "Dear Mr. Sato,\nThanks")?.name == "sato")
        #expect(SendGuard.greetedName(in: "ＳＡＴＯ ＪＩＲＯ様")?.name == "satojiro")
        #expect(SendGuard.greetedName(in: "ｻﾄｳ様")?.name == "サトウ")
        #expect(SendGuard.greetedName(in: "山田さん\nこんにちは")?.name == "山田")
        #expect(SendGuard.greetedName(in: "ショップサポートです\n鈴木様にもお伝えください") == nil)
        #expect(SendGuard.greetedName(in: "ご担当者\n\n佐藤様") == nil)
        #expect(SendGuard.greetedName(in: "阿部様")?.name == "阿部")
        #expect(SendGuard.greetedName(in: "服部 花子 様")?.name == "服部花子")
        #expect(SendGuard.greetedName(in: "営業部 佐藤様")?.name == "佐藤")
        #expect(SendGuard.greetedName(in: "お客様各位") == nil && SendGuard.greetedName(in: "ご担当者様") == nil)
        #expect(SendGuard.greetedName(in: "\n山田 花子 様\n本文")?.name == "山田花子")
        #expect(SendGuard.greetedName(in: "山田さま")?.name == "山田")
        #expect(SendGuard.greetedName(in: "Dear Hanako Yamada,\nThanks")?.name == "hanakoyamada")
        #expect(SendGuard.greetedName(in: "お問い合わせありがとうございます。\n山田様") == nil)
        // A textarea's CRLF: still the first line only.
        #expect(SendGuard.greetedName(in: "\r\n佐藤 次郎 様\r\n本文")?.name == "佐藤次郎")
        #expect(SendGuard.greetedName(in: "\r\n佐藤 次郎 様\r\n本文")?.line == 2)
        #expect(SendGuard.greetedName(in: "お問い合わせありがとうございます。\r\n山田様") == nil)
    }
}
