import Foundation
import Testing
@testable import MadoguchiMail

@Suite("Reading the mail inside a forward")
struct ForwardedMailTests {
    func mail(subject: String, body: String, contentType: String = "text/plain; charset=UTF-8") -> ParsedMail {
        ParsedMail(Array("From: Owner <owner@shop.example>\nTo: support@shop.example\nSubject: \(subject)\nContent-Type: \(contentType)\n\n\(body)\n".utf8))
    }

    @Test("Gmail's forward: the original sender, subject and text, and the forwarder's words above it")
    func gmail() throws {
        let forward = try #require(mail(subject: "Fwd: 返品について", body: """
            こちらの対応お願いします。

            ---------- Forwarded message ---------
            From: 山田 花子 <Hanako@Example.JP>
            Date: 2026年12月1日(火) 10:00
            Subject: 返品について
            To: <owner@shop.example>


            サイズが合わないので返品したいです。

            山田
            """).forwardedMails().first)
        #expect(forward.from == MailAddress(name: "山田 花子", address: "Hanako@example.jp"))   // the domain lower-cased, as in any From
        #expect(forward.subject == "返品について")
        #expect(forward.visibleText == "サイズが合わないので返品したいです。\n\n山田")
        #expect(forward.note == "こちらの対応お願いします。")
    }

    @Test("Thunderbird in Japanese, Apple Mail, and Outlook's header block with [mailto:] under FW:")
    func otherClients() throws {
        let thunderbird = try #require(mail(subject: "転送: 配送状況", body: """
            -------- 転送メッセージ --------
            件名: 配送状況
            日付: Tue, 1 Dec 2026 10:00:00 +0900
            差出人: 佐藤 <sato@docomo.ne.jp>
            宛先: owner@shop.example

            まだ届きません。
            """).forwardedMails().first)
        #expect(thunderbird.from.address == "sato@docomo.ne.jp")
        #expect(thunderbird.subject == "配送状況")
        #expect(thunderbird.visibleText == "まだ届きません。")
        #expect(thunderbird.note == "")

        let apple = try #require(mail(subject: "Fwd: Order 1234", body: """
            Begin forwarded message:

            From: Jane Roe <jane@example.com>
            Subject: Order 1234
            Date: 1 December 2026 at 10:00:00 JST
            To: owner@shop.example

            Where is my parcel?
            """).forwardedMails().first)
        #expect(apple.from == MailAddress(name: "Jane Roe", address: "jane@example.com"))

        let outlook = try #require(mail(subject: "FW: 請求書", body: """
            経理の件です。

            ________________________________
            *From:* Kato Ichiro [mailto:kato@example.co.jp]
            *Sent:* Tuesday, December 1, 2026 10:00 AM
            *To:* owner@shop.example
            *Subject:* 請求書

            請求書を再発行してください。
            """).forwardedMails().first)
        #expect(outlook.from == MailAddress(name: "Kato Ichiro", address: "kato@example.co.jp"))
        #expect(outlook.subject == "請求書")
        #expect(outlook.note == "経理の件です。")
    }

    @Test("a reply's quoted history is no forward: under Re:, an Outlook block or Original Message names no original")
    func replyIsNoForward() {
        let reply = mail(subject: "RE: 返品について", body: """
            ありがとうございます。

            -----Original Message-----
            From: Support <support@shop.example>
            Sent: Tuesday, December 1, 2026 10:00 AM
            Subject: 返品について

            返品を承りました。
            """)
        #expect(reply.forwardedMails().isEmpty)
        #expect(mail(subject: "Hello", body: "Just a question.").forwardedMails().isEmpty)
        // A forward separator with no sender's address under it: nobody to file it under.
        #expect(mail(subject: "Fwd: x", body: "---------- Forwarded message ---------\nFrom: Taro Yamada\nSubject: x\n\ntext").forwardedMails().isEmpty)
    }

    @Test("""
        a forward of a forward names every sender in order; a reply quoting a forward (Re:, or under an \
        attribution line as HTML replies quote) names none; Outlook's 'Last, First <address>' is one sender
        """)
    func nestedAndQuoted() throws {
        let nested = mail(subject: "Fwd: Fwd: 交換", body: """
            店長、お願いします。

            ---------- Forwarded message ---------
            From: 同僚 <colleague@shop.example>
            Subject: Fwd: 交換

            ---------- Forwarded message ---------
            From: "Tanaka, Ichiro" <ichiro@example.jp>
            Subject: 交換

            交換してください。
            """).forwardedMails()
        #expect(nested.map(\.from.address) == ["colleague@shop.example", "ichiro@example.jp"])
        #expect(nested.last?.from.name == "Tanaka, Ichiro")
        #expect(nested.last?.visibleText == "交換してください。")
        #expect(nested.allSatisfy { $0.note == "店長、お願いします。" })
        let outlook = mail(subject: "FW: 請求", body: "________________________________\nFrom: Tanaka, Ichiro <ichiro@example.jp>\nSent: Monday\nSubject: 請求\n\n本文").forwardedMails()
        #expect(outlook.first?.from == MailAddress(name: "Tanaka, Ichiro", address: "ichiro@example.jp"))

        let forwarded = "---------- Forwarded message ---------\nFrom: Jiro <jiro@example.jp>\nSubject: 配送\n\n届きません"
        #expect(mail(subject: "Re: Fwd: 配送について", body: "対応しました。\n\n" + forwarded).forwardedMails().isEmpty)
        #expect(mail(subject: "配送について", body: "対応しました。\n\nOn Mon, 7 Dec 2026 at 10:00, 店長 <owner@shop.example> wrote:\n" + forwarded)
            .forwardedMails().isEmpty)
    }

    @Test("a mail attached whole under Fwd: is the original, with its Message-ID; two attached mails are a bundle")
    func attached() throws {
        let original = "From: Mika <mika@ezweb.ne.jp>\nSubject: =?UTF-8?B?5Zyo5bqr?=\nMessage-ID: <orig@ezweb.ne.jp>\nContent-Type: text/plain; charset=UTF-8\n\n在庫はありますか。\n"
        let body = """
            --b
            Content-Type: text/plain; charset=UTF-8

            お願いします
            --b
            Content-Type: message/rfc822

            \(original)
            --b--
            """
        let forward = try #require(mail(subject: "Fwd: 在庫", body: body, contentType: "multipart/mixed; boundary=\"b\"").forwardedMails().first)
        #expect(forward.from.address == "mika@ezweb.ne.jp")
        #expect(forward.subject == "在庫")
        #expect(forward.messageID == "orig@ezweb.ne.jp")
        #expect(forward.visibleText == "在庫はありますか。")
        #expect(forward.note == "お願いします")

        let two = body.replacingOccurrences(of: "--b--", with: "--b\nContent-Type: message/rfc822\n\n\(original)\n--b--")
        #expect(mail(subject: "Fwd: 在庫", body: two, contentType: "multipart/mixed; boundary=\"b\"").forwardedMails().isEmpty)
    }

    @Test("forward prefixes are read in several languages and taken off the subject")
    func prefixes() {
        #expect(ForwardedMail.withoutForwardPrefix("Fwd: Re: 返品") == "Re: 返品")
        #expect(ForwardedMail.withoutForwardPrefix("転送：配送") == "配送")
        #expect(ForwardedMail.withoutForwardPrefix("[Fwd: order]") == "order")
        #expect(ForwardedMail.withoutForwardPrefix("Re: order") == "Re: order")
        #expect(ForwardedMail.isForwardSubject("WG: Bestellung"))
        #expect(!ForwardedMail.isForwardSubject("Fwdx: nothing"))
    }
}
