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
        String(decoding: try data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
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
