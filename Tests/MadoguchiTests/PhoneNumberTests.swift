import Testing
@testable import Madoguchi

@Suite("Phone numbers normalize to E.164, Japan first")
struct PhoneNumberTests {
    @Test("every spelling of one number is one identity", arguments: [
        ("090-1234-5678", "+819012345678"),
        ("09012345678", "+819012345678"),
        ("+81 90 1234 5678", "+819012345678"),
        ("+819012345678", "+819012345678"),
        ("+81 (0)90-1234-5678", "+819012345678"),
        ("81-90-1234-5678", "+819012345678"),
        ("０９０－１２３４－５６７８", "+819012345678"),
        ("＋８１ ９０ １２３４ ５６７８", "+819012345678"),
        ("090ー1234ー5678", "+819012345678"),
        ("010-81-90-1234-5678", "+819012345678"),
        ("080.1234.5678", "+818012345678"),
        ("070 1234 5678", "+817012345678"),
        ("0081-90-1234-5678", "+819012345678"),        // as written for callers abroad
        ("090\u{A0}1234\u{A0}5678", "+819012345678"),   // no-break spaces from copied text
        ("090／1234／5678", "+819012345678"),
        ("090．1234．5678", "+819012345678"),
        ("090﹣1234﹣5678", "+819012345678"),
    ])
    func mobile(_ input: String, _ expected: String) {
        #expect(PhoneNumber.normalize(input) == .valid(expected))
    }

    @Test("landlines with 2 to 5 digit area codes, free dial, navi dial and IP phones", arguments: [
        ("(03) 1234-5678", "+81312345678"),        // Tokyo, 2-digit area code
        ("06-6123-4567", "+81661234567"),          // Osaka
        ("045-123-4567", "+81451234567"),          // Yokohama, 3 digits
        ("0466-12-3456", "+81466123456"),          // Fujisawa, 4 digits
        ("01456-2-1234", "+81145621234"),          // 5-digit area code
        ("0120-123-456", "+81120123456"),          // free dial
        ("0800-123-4567", "+818001234567"),        // free dial, 0800
        ("0570-064-123", "+81570064123"),          // navi dial
        ("050-1234-5678", "+815012345678"),        // IP phone
    ])
    func other(_ input: String, _ expected: String) {
        #expect(PhoneNumber.normalize(input) == .valid(expected))
    }

    @Test("other countries keep their number when written with +", arguments: [
        ("+1 (415) 555-0100", "+14155550100"),
        ("+44 20 7946 0958", "+442079460958"),
        ("010-1-415-555-0100", "+14155550100"),
        ("0046 8 123 456 78", "+46812345678"),   // 00, the prefix most of the world dials: not a doubled trunk 0
    ])
    func international(_ input: String, _ expected: String) {
        #expect(PhoneNumber.normalize(input) == .valid(expected))
    }

    @Test("impossible numbers are refused with a reason", arguments: [
        "", "abc", "090-1234-567", "090-1234-56789", "03-1234-567", "0120-12-345", "12345", "+0 123 4567 890",
        "+1234567", "+1234567890123456", "090+12345678", "060-1234-5678", "tel:0312345678",
    ])
    func impossible(_ input: String) {
        guard case .invalid(let reason) = PhoneNumber.normalize(input) else {
            Issue.record("\(input) was accepted")
            return
        }
        #expect(!reason.isEmpty)
    }

    @Test("a Japanese number says whether it takes a text; another country's is let through", arguments: [
        ("+819012345678", nil), ("+818012345678", nil), ("+817012345678", nil), ("+812012345678", nil),
        ("+81312345678", "03"), ("+81451234567", "045"), ("+815012345678", "050"),
        ("+81120123456", "0120"), ("+818001234567", "0800"), ("+81570123456", "0570"),
        ("+14155550100", nil), ("+442079460958", nil),
    ] as [(String, String?)])
    func textable(_ e164: String, _ refusedPrefix: String?) {
        let refusal = PhoneNumber.smsRefusal(e164)
        if let refusedPrefix {
            #expect(refusal?.hasPrefix(refusedPrefix) == true, "\(refusal ?? "nil")")
        } else {
            #expect(refusal == nil)
        }
    }
}
