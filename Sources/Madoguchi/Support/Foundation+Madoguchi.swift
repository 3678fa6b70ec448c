import Foundation

extension JSONEncoder {
    /// Keys in order, so that the same value always encodes to the same bytes (stored answers,
    /// fingerprints of re-encoded requests).
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

extension JSONSerialization {
    /// A dictionary as sorted-key JSON text, for a `jsonb` bind.
    static func text(_ object: [String: Any]) throws -> String {
        try JSONText.object(object)
    }
}

extension Date {
    /// `2026-12-02T15:04:05Z`: what `Date.formatted(.iso8601)` and `ISO8601DateFormatter` write (seconds
    /// rounded down), without a formatter, which costs more than the rest of a delivery's bookkeeping:
    /// civil date from days since 1970 (H. Hinnant's algorithm).
    var rfc3339UTC: String {
        let seconds = Int64(timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = year < 1000 ? String(repeating: "0", count: 4 - String(year).count) + String(year) : String(year)
        return "\(yearText)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60))Z"
    }
}

extension Duration {
    /// Whole and fractional seconds, for `make_interval(secs => …)`.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
    /// nil for an empty string: "an empty string clears it" fields.
    var nonEmpty: String? { isEmpty ? nil : self }
}

extension Array where Element: Hashable {
    /// The elements in their first order, each once.
    var uniqued: [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

extension UUID {
    /// Lower-case, as every id appears in JSON, events and problem details.
    var lowercased: String { uuidString.lowercased() }
}

extension Date {
    /// 1000-01-01T00:00:00Z up to 9999-12-31T23:59:59Z: the instants the service takes from outside.
    /// PostgresNIO traps (rather than throws) on one past ±292,277 years.
    static let fourDigitYears = Date(timeIntervalSince1970: -30_610_224_000)...Date(timeIntervalSince1970: 253_402_300_799)
}

extension Sequence<UInt8> {
    /// Lowercase hexadecimal, two digits a byte: how digests and signatures are written everywhere
    /// the service shows or compares one (`sha256` members, migration checksums, Twilio's signature).
    var lowercaseHex: String {
        map { String(format: "%02x", $0) }.joined()
    }
}
