import Foundation

/// Reads an RFC 3339 date-time (`2026-12-06T21:30:00Z`, `2026-12-07T06:30:00.123+09:00`) in the
/// proleptic Gregorian calendar PostgreSQL uses, years 1000–9999.
///
/// Foundation's ISO 8601 reader, used before, refused fractional seconds unless told to expect them
/// (and then refused dates without): `new Date().toISOString()` from a JavaScript form gateway was
/// a 400 and the inquiry was lost. It also read dates before 15 October 1582 in the Julian
/// calendar, which PostgreSQL then stored ten days later.
enum RFC3339 {
    /// The last instant RFC 3339 (four-digit years) can write: 9999-12-31T23:59:59Z.
    static let latest = Date(timeIntervalSince1970: 253_402_300_799)

    static func date(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + digits] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }
        func expect(_ allowed: String) -> Bool {
            guard index < bytes.count, allowed.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2), expect("Tt"),
              let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2),
              (1000...9999).contains(year), (1...12).contains(month), (1...daysIn(month, of: year)).contains(day),
              hour < 24, minute < 60, second < 60
        else { return nil }
        // The fraction as whole microseconds, PostgreSQL's precision, rounded half up on the seventh digit.
        var microseconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                let digit = Int(bytes[index] - UInt8(ascii: "0"))
                switch index - start {
                case 0..<6: microseconds = microseconds * 10 + digit
                case 6 where digit >= 5: microseconds += 1
                default: break
                }
                index += 1
            }
            guard index > start else { return nil }
            for _ in min(index - start, 6)..<6 { microseconds *= 10 }
        }
        var offset = 0
        if expect("Zz") {
            offset = 0
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let hours = number(2), expect(":"), let minutes = number(2), hours < 24, minutes < 60 else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let seconds = daysSinceEpoch(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        let date = Date(timeIntervalSince1970: Double(seconds) + Self.storable(microseconds, since2000: seconds >= 946_684_800))
        // The years are the instant's in UTC (9999-12-31T23:30:00-01:00 is in the year 10000).
        return Date.fourDigitYears.contains(date) ? date : nil
    }

    /// A fraction of a second as a Double that PostgresNIO stores as exactly `microseconds`. It
    /// writes a Date as the microseconds since 2000 cut toward zero, and `.123` is not a Double:
    /// 21:30:00.123 was stored as 21:30:00.122999. Half a microsecond away from zero (the Double's
    /// error at these magnitudes is under a tenth of that) lands the cut on the intended one. Whole
    /// seconds are exact and stay as they are.
    private static func storable(_ microseconds: Int, since2000: Bool) -> Double {
        guard microseconds != 0 else { return 0 }
        return (Double(microseconds) + (since2000 ? 0.5 : -0.5)) / 1_000_000
    }

    private static func daysIn(_ month: Int, of year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to a civil date (H. Hinnant's algorithm, as `Date.rfc3339UTC` inverts it).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let year = month <= 2 ? year - 1 : year
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
