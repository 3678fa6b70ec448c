import Foundation
import OpenAPIRuntime

/// How the generated code writes JSON bodies and dates. Its defaults are for people reading a
/// response in a terminal: every body pretty-printed, every date through `ISO8601DateFormatter`.
/// Our callers are programs, and a report is thousands of rows: at 1,000,000 tickets a year's backlog
/// by day was 415 KB of mostly indentation, and encoding took a third of the request.
enum ResponseEncoding {
    static let configuration = OpenAPIRuntime.Configuration(
        dateTranscoder: UTCSecondsDateTranscoder(),
        // Sorted keys keep bodies stable for caches, diffs and tests; `/` needs no escape in JSON.
        jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes])
}

/// Writes a date as RFC 3339 in UTC to the second (`2026-12-04T15:00:00Z`), as the default
/// transcoder does, without a formatter or its lock; reads any RFC 3339 date-time (fractions of a
/// second and offsets included) within the years 1000–9999 (`RFC3339`).
///
/// Foundation reads `300000-01-01T00:00:00Z` as a date, and PostgresNIO traps (rather than throws) on
/// an instant past ±292,277 years: one query parameter or body field stopped the server. RFC 3339's
/// years have four digits anyway.
struct UTCSecondsDateTranscoder: DateTranscoder {
    func encode(_ date: Date) throws -> String { date.rfc3339UTC }

    func decode(_ text: String) throws -> Date {
        guard let date = RFC3339.date(text) else {
            // Reported as the runtime reports any value that did not decode: a 400 naming it.
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: Self.unreadable(text)))
        }
        return date
    }

    /// What is said of a date-time that is not one (`Contract` says it of a body's, naming the member).
    static func unreadable(_ text: String) -> String {
        "'\(text.prefix(40))' is not an RFC 3339 date-time between the years 1000 and 9999, "
            + "like 2026-12-06T21:30:00Z or 2026-12-07T06:30:00.123+09:00 (in a query, write + as %2B)."
    }
}
