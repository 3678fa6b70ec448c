import Testing
@testable import Madoguchi

@Suite("Whether a stored mail needs SMTPUTF8")
struct MailHeaderBytesTests {
    @Test("a raw UTF-8 address in the header needs it; UTF-8 in the body alone does not")
    func header() {
        #expect(EmailDelivery.headerIsNotASCII(Array("To: taro@日本語.jp\r\nSubject: x\r\n\r\nbody\r\n".utf8)))
        #expect(!EmailDelivery.headerIsNotASCII(Array("To: taro@xn--wgv71a119e.jp\r\nSubject: x\r\n\r\n本文です\r\n".utf8)))
        #expect(!EmailDelivery.headerIsNotASCII(Array("To: a@example.jp\r\n\r\n".utf8)))
    }
}
