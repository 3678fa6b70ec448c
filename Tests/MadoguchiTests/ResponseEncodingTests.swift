import Foundation
import NIOCore
import OpenAPIRuntime
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("How response bodies are written")
struct ResponseEncodingTests {
    @Test("dates are written as the default transcoder writes them, to the second, and as CSV writes them; read the same")
    func dates() throws {
        let ours = UTCSecondsDateTranscoder()
        let theirs = ISO8601DateTranscoder()
        var generator = SystemRandomNumberGenerator()
        let samples = [0, 951_782_400, 1_798_761_599.998, 1_700_000_000.25]
            + (0..<2000).map { _ in Double.random(in: 0..<32_503_680_000, using: &generator) }
        for seconds in samples {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(try ours.encode(date) == date.rfc3339UTC)
            // The default rounds to the millisecond first, so the last half millisecond of a second
            // became the next second in JSON while CSV kept the second it happened in. Now both do.
            guard seconds - seconds.rounded(.down) < 0.9995 else { continue }
            #expect(try ours.encode(date) == theirs.encode(date), "\(seconds)")
        }
        let lastHalfMillisecond = Date(timeIntervalSince1970: 1_798_761_599.9997)
        #expect(try ours.encode(lastHalfMillisecond) == "2026-12-31T23:59:59Z")
        #expect(try theirs.encode(lastHalfMillisecond) == "2027-01-01T00:00:00Z")
        for text in ["2026-12-04T15:00:00Z", "2026-12-05T00:00:00+09:00"] {
            #expect(try ours.decode(text) == theirs.decode(text))
        }
        #expect(throws: (any Error).self) { try ours.decode("2026-12-04") }
    }

    @Test("any RFC 3339 date-time is read: fractions of a second (JavaScript's toISOString), offsets, lower-case t and z; in PostgreSQL's calendar")
    func readingDates() throws {
        let ours = UTCSecondsDateTranscoder()
        #expect(try Self.stored(ours.decode("2026-12-06T21:30:00.123Z")) == (1_796_592_600 - 946_684_800) * 1_000_000 + 123_000)
        #expect(try Self.stored(ours.decode("2026-12-07T06:30:00.5+09:00")) == (1_796_592_600 - 946_684_800) * 1_000_000 + 500_000)
        #expect(try ours.decode("2026-12-06t21:30:00z") == ours.decode("2026-12-06T21:30:00Z"))
        #expect(try ours.decode("2026-12-06T16:00:00-05:30") == ours.decode("2026-12-06T21:30:00Z"))
        #expect(try ours.decode("2024-02-29T00:00:00Z").rfc3339UTC == "2024-02-29T00:00:00Z")
        // Proleptic Gregorian, as PostgreSQL counts: Foundation read these in the Julian calendar.
        #expect(try ours.decode("1582-10-10T00:00:00Z").rfc3339UTC == "1582-10-10T00:00:00Z")
        #expect(try ours.decode("1000-01-01T00:00:00Z") == Date.fourDigitYears.lowerBound)
        #expect(try ours.decode("9999-12-31T23:59:59Z") == Date.fourDigitYears.upperBound)
        // Every second of a few random years reads back as it is written.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let date = Date(timeIntervalSince1970: Double(Int64.random(in: -30_610_224_000...253_402_300_799, using: &generator)))
            #expect(try ours.decode(date.rfc3339UTC) == date)
        }
        for text in ["0999-12-31T23:59:59Z", "2026-02-29T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06T21:30:00",
                     "2026-12-06 21:30:00Z", "2026-12-06T21:30:00.Z", "2026-12-06T21:30:00+0900", "2026-12-06T21:30:60Z",
                     "2026-12-06T21:30:00Z ", "+12026-12-06T21:30:00Z", "9999-12-31T23:30:00-01:00", "1000-01-01T00:30:00+01:00"] {
            #expect(throws: (any Error).self, "\(text)") { try ours.decode(text) }
        }
    }

    /// A Date is a Double of seconds since 2001, a microsecond apart only within some 35 years of it
    /// (near the year 9999 its steps are 30 µs): the times a support desk is given.
    @Test("a fraction of a second is stored to the microsecond it says, before 2000 and after; finer digits round")
    func storedFractions() throws {
        let ours = UTCSecondsDateTranscoder()
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let second = Int64.random(in: 631_152_000...2_051_222_400, using: &generator)  // 1990 to 2035
            let micros = Int64.random(in: 1...999_999, using: &generator)
            let whole = Date(timeIntervalSince1970: Double(second)).rfc3339UTC.dropLast()
            let expected = (second - 946_684_800) * 1_000_000 + micros
            let sixDigits = whole + "." + String(format: "%06lld", micros) + "Z"
            #expect(try Self.stored(ours.decode(String(sixDigits))) == expected, "\(sixDigits)")
            // JavaScript's toISOString: milliseconds.
            let millis = micros / 1000
            let threeDigits = whole + "." + String(format: "%03lld", millis) + "Z"
            #expect(try Self.stored(ours.decode(String(threeDigits))) == (second - 946_684_800) * 1_000_000 + millis * 1000, "\(threeDigits)")
        }
        #expect(try Self.stored(ours.decode("2000-01-01T00:00:00.0000004Z")) == 0)
        #expect(try Self.stored(ours.decode("2000-01-01T00:00:00.0000005Z")) == 1)
        #expect(try Self.stored(ours.decode("1999-12-31T23:59:59.9999996Z")) == 0)
        #expect(try Self.stored(ours.decode("1999-12-31T23:59:59.999999Z")) == -1)
    }

    /// What PostgresNIO sends for `date`: microseconds since 2000-01-01 UTC.
    static func stored(_ date: Date) -> Int64 {
        var buffer = ByteBuffer()
        date.encode(into: &buffer, context: .default)
        return buffer.readInteger(as: Int64.self) ?? .min
    }

    @Test("bodies are compact, with sorted keys and unescaped slashes")
    func bodies() {
        #expect(ResponseEncoding.configuration.jsonEncodingOptions == [.sortedKeys, .withoutEscapingSlashes])
    }
}
