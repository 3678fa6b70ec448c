import Foundation
import Testing
@testable import MadoguchiMail

@Suite("Internationalized domain names as A-labels")
struct IDNATests {
    @Test("Punycode matches RFC 3492's samples and Python's codec", arguments: [
        ("日本語", "wgv71a119e"), ("ドメイン名例", "eckwd4c7cu47r2wf"), ("bücher", "bcher-kva"), ("münchen", "mnchen-3ya"),
        ("3年b組金八先生", "3b-ww4c5e180e575a65lsy2b"), ("安室奈美恵-with-super-monkeys", "-with-super-monkeys-pc58ag80a8qai00g7n9n"),
        ("例え", "r8jz45g"), ("お名前", "t8jx73hngb"),
    ])
    func punycode(label: String, expected: String) {
        #expect(IDNA.punycode(label.unicodeScalars.map(\.value)) == expected)
    }

    @Test("what people type: full-width letters, 。 and ． between labels, capitals; ASCII labels stay as they are")
    func typedDomains() {
        #expect(IDNA.asciiDomain("日本語.jp") == "xn--wgv71a119e.jp")
        #expect(IDNA.asciiDomain("日本語。ＪＰ") == "xn--wgv71a119e.jp")
        #expect(IDNA.asciiDomain("ｓｈｏｐ例．ｊｐ") == "xn--shop-3u6f.jp")
        #expect(IDNA.asciiDomain("ＥＸＡＭＰＬＥ.jp") == "example.jp")
        #expect(IDNA.asciiDomain("日本語.jp.") == "xn--wgv71a119e.jp.")
    }

    @Test("an address converts only its domain, and only with an ASCII local part; nothing that is not a domain is touched")
    func addresses() {
        #expect(IDNA.asciiAddress("taro@日本語.jp") == "taro@xn--wgv71a119e.jp")
        #expect(IDNA.asciiAddress("Taro.Y@ドメイン名例.jp") == "Taro.Y@xn--eckwd4c7cu47r2wf.jp")
        #expect(IDNA.asciiAddress("hanako@example.jp") == "hanako@example.jp")
        #expect(IDNA.asciiAddress("花子@日本語.jp") == "花子@日本語.jp", "a UTF-8 local part needs SMTPUTF8 anyway")
        #expect(IDNA.asciiAddress("no-at-sign") == "no-at-sign")
        #expect(IDNA.asciiAddress("a@日本語..jp") == "a@日本語..jp", "an empty label")
        #expect(IDNA.asciiAddress("a@日本語＠evil.jp") == "a@日本語＠evil.jp", "NFKC makes ＠ an @: not a domain")
        #expect(IDNA.asciiAddress("a@例⒈jp") == "a@例⒈jp", "NFKC makes ⒈ a 1 and a dot")
        #expect(IDNA.asciiAddress("a@日本語／x.jp") == "a@日本語／x.jp")
        // 40 different ideographs: 83 characters as an A-label (Punycode packs repeats, so not 40 of one).
        let long = String(String.UnicodeScalarView((0..<40).map { Unicode.Scalar(0x4E00 + $0 * 7)! }))
        #expect(IDNA.asciiAddress("a@" + long + ".jp") == "a@" + long + ".jp", "a label longer than 63 as an A-label")
    }

    @Test("a label longer than any there can be is refused before Punycode reads it", .timeLimit(.minutes(1)))
    func hugeLabels() {
        let label = String(String.UnicodeScalarView((0..<80_000).map { Unicode.Scalar(0x4E00 + $0 % 20_000)! }))
        #expect(IDNA.asciiDomain(label + ".jp") == nil)
        #expect(IDNA.asciiDomain(String(repeating: "例", count: 64) + ".jp") == nil)
    }

    @Test("a composed mail to a Japanese domain needs no SMTPUTF8, and its To header carries the A-label")
    func composed() throws {
        let mail = OutgoingMail(
            from: MailAddress(name: "ショップ", address: "support@shop.example"), to: [MailAddress(name: "太郎", address: "taro@日本語.jp")],
            subject: "ご案内", messageID: "r1@shop.example", date: Date(timeIntervalSince1970: 1_800_000_000), text: "本文です。")
        let composed = try MailComposer.compose(mail)
        #expect(!composed.needsSMTPUTF8)
        #expect(ParsedMail(composed.bytes).to.map(\.address) == ["taro@xn--wgv71a119e.jp"])
    }
}
