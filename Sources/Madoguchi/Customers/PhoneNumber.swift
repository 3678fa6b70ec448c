/// Phone numbers as identities: every spelling of one number normalizes to the same E.164 string, with
/// Japan as the default region (`090-1234-5678`, `+81 90 1234 5678`, `０９０－１２３４－５６７８`,
/// `(03) 1234-5678` and `81-90-1234-5678` are all `+819012345678` or `+81312345678`).
///
/// Japanese numbers are checked against the national numbering plan's lengths (mobile, IP, free dial,
/// navi dial, landlines with 2–5 digit area codes); other countries' numbers, which need an explicit
/// `+`, are only checked for E.164's shape.
enum PhoneNumber {
    enum Outcome: Equatable {
        case valid(String)
        case invalid(String)
    }

    static func normalize(_ input: String) -> Outcome {
        var digits = ""
        var plus = false
        for scalar in input.unicodeScalars {
            switch scalar.value {
            case 0x30...0x39: digits.unicodeScalars.append(scalar)
            case 0xFF10...0xFF19: digits.unicodeScalars.append(Unicode.Scalar(scalar.value - 0xFF10 + 0x30)!)  // full-width digits
            case 0x2B, 0xFF0B:  // + and full-width ＋
                guard digits.isEmpty, !plus else { return .invalid("a + may only start the number") }
                plus = true
            case 0x20, 0xA0, 0x3000, 0x2D, 0xFF0D, 0xFE63, 0x2010...0x2015, 0x2212, 0x30FC, 0xFF70, 0x28, 0x29, 0xFF08, 0xFF09,
                 0x2E, 0xFF0E, 0x2F, 0xFF0F:
                continue  // spaces (a no-break one from copied text), hyphens (including the ー typed for one), brackets, dots, slashes
            default:
                return .invalid("'\(Character(scalar))' is not part of a phone number")
            }
        }
        guard !digits.isEmpty else { return .invalid("there are no digits") }

        if plus {
            if digits.hasPrefix("81") { return japanese(nationalSignificant: String(digits.dropFirst(2))) }
            // Country codes do not start with 0; E.164 allows at most 15 digits.
            guard digits.first != "0", (8...15).contains(digits.count) else {
                return .invalid("+\(digits) is not an international number (8 to 15 digits, no leading 0)")
            }
            return .valid("+" + digits)
        }
        if digits.hasPrefix("010") {
            // Japan's international call prefix, as dialled from a Japanese phone.
            return normalize("+" + digits.dropFirst(3))
        }
        if digits.hasPrefix("00") {
            // The international prefix most of the world dials (0081-90-…, as a number is written for
            // callers abroad): read as a doubled trunk 0 it was refused, and 0046… became a Japanese landline.
            return normalize("+" + digits.dropFirst(2))
        }
        if digits.hasPrefix("0") { return japanese(nationalSignificant: String(digits.dropFirst())) }
        // National numbers start with 0, so 81… without one is the country code written without its +.
        if digits.hasPrefix("81") { return japanese(nationalSignificant: String(digits.dropFirst(2))) }
        return .invalid("\(digits) is neither a Japanese number (starting with 0) nor an international one (starting with +)")
    }

    /// Why a number in E.164 form (`normalize`'s answer) cannot receive a text message, or nil when
    /// it can or we cannot tell. Only Japanese numbers say what they are by their prefix: mobile
    /// (070, 080, 090) and M2M (020) take SMS; a landline, an IP phone (050), free dial and navi dial
    /// do not, and a provider accepts the send only to fail it later (Twilio 21614), after the agent
    /// has moved on. Another country's number may be either, and is let through.
    static func smsRefusal(_ e164: String) -> String? {
        guard e164.hasPrefix("+81") else { return nil }
        let national = "0" + e164.dropFirst(3)
        switch national {
        // 0800 before 080: mobile numbers never begin 080-0, free dial's do.
        case _ where national.hasPrefix("0120") || national.hasPrefix("0800"): return "\(national) is a free dial number"
        case _ where ["070", "080", "090", "020"].contains(String(national.prefix(3))): return nil
        case _ where national.hasPrefix("050"): return "\(national) is an IP phone number (050)"
        case _ where national.hasPrefix("0570"): return "\(national) is a navi dial number (0570)"
        default: return "\(national) is a landline number"
        }
    }

    /// `nationalSignificant` is the number after the trunk 0 (or after +81, where some write the 0 anyway).
    private static func japanese(nationalSignificant: String) -> Outcome {
        var number = nationalSignificant
        if number.hasPrefix("0") { number.removeFirst() }  // "+81 (0)90 …"
        let national = "0" + number
        let valid: Bool
        switch national {
        case _ where national.hasPrefix("0120"), _ where national.hasPrefix("0570"):
            valid = national.count == 10  // free dial, navi dial
        case _ where national.hasPrefix("0800"):
            valid = national.count == 11  // free dial
        case _ where ["070", "080", "090", "050", "020"].contains(String(national.prefix(3))):
            valid = national.count == 11  // mobile, IP phone, pager/M2M
        case _ where ["060", "000"].contains(String(national.prefix(3))) || national.hasPrefix("00"):
            valid = false
        default:
            valid = national.count == 10  // landline: area code (2–5 digits with its 0) + subscriber, 10 in all
        }
        guard valid else { return .invalid("\(national) is not a possible Japanese number (wrong length for its prefix)") }
        return .valid("+81" + number)
    }
}
