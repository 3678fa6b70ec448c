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

    @Test("bodies are compact, with sorted keys and unescaped slashes")
    func bodies() {
        #expect(ResponseEncoding.configuration.jsonEncodingOptions == [.sortedKeys, .withoutEscapingSlashes])
    }
}
