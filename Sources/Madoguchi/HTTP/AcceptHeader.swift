import Foundation

/// An `Accept` header's media ranges with their weights (RFC 9110 §12.5.1): the most specific range
/// that matches a media type decides, and weight 0 means "not this".
struct AcceptHeader {
    private struct Range {
        let type: String
        let subtype: String
        let quality: Double
    }

    private let ranges: [Range]

    init(_ header: String) {
        self.init(ranges: header.split(separator: ",").map { element in
            let parts = element.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.lowercased().hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 1
            }
            return (parts.first ?? "", quality)
        })
    }

    /// Ranges already read, as the generated code hands them over (`type/subtype`, weight).
    init(ranges: [(type: String, quality: Double)]) {
        self.ranges = ranges.compactMap { range in
            let media = range.type.lowercased().split(separator: "/", maxSplits: 1).map(String.init)
            guard media.count == 2, !media[0].isEmpty, !media[1].isEmpty else { return nil }
            return Range(type: media[0], subtype: media[1], quality: min(max(range.quality, 0), 1))
        }
    }

    /// An empty or unreadable header allows everything, as no header does.
    func allows(_ mediaType: String) -> Bool {
        guard !ranges.isEmpty else { return true }
        let media = mediaType.lowercased().split(separator: ";").first.map(String.init) ?? ""
        let parts = media.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return false }
        func specificity(_ range: Range) -> Int? {
            switch (range.type, range.subtype) {
            case (parts[0], parts[1]): 2
            case (parts[0], "*"): 1
            case ("*", "*"): 0
            default: nil
            }
        }
        let best = ranges.compactMap { range in specificity(range).map { (specificity: $0, quality: range.quality) } }
            .max { $0.specificity < $1.specificity }
        return (best?.quality ?? 0) > 0
    }
}

extension Problem {
    static func notAcceptable(offered: Set<String>) -> Problem {
        Problem(.notAcceptable, status: .notAcceptable, title: "Not acceptable",
                detail: "\(offered.sorted().joined(separator: " and ")) \(offered.count == 1 ? "is" : "are") not acceptable to this request's Accept header, "
                    + "and this operation answers with nothing else; nothing was done.")
    }
}
