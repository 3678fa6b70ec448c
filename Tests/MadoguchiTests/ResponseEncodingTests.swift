import Foundation
import OpenAPIRuntime
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
        #expect(try ours.decode("2026-12-06T21:30:00.123Z").timeIntervalSince1970 == 1_796_592_600.123)
        #expect(try ours.decode("2026-12-07T06:30:00.5+09:00").timeIntervalSince1970 == 1_796_592_600.5)
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

    @Test("bodies are compact, with sorted keys and unescaped slashes")
    func bodies() {
        #expect(ResponseEncoding.configuration.jsonEncodingOptions == [.sortedKeys, .withoutEscapingSlashes])
    }
}
