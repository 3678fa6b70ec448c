import Foundation

/// Fills `{{name}}` variables. A variable it does not know, or knows but has no value for, is an
/// error naming it: a customer must never receive "お世話になっております、様。".
struct TemplateRenderer: Sendable {
    struct Failure: Error, Equatable {
        var unknown: [String]
        var unfilled: [String]
    }

    /// Known variables and their values; nil for a known variable with no value (a customer with no name).
    var values: [String: String?]
    /// Namespaces whose fields come from the caller (`order.*`): any field is known, filled or not.
    var openNamespaces: Set<String> = ["order"]

    static let pattern = try! NSRegularExpression(pattern: #"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}"#)

    /// The variable names in `text`, in order of first use.
    static func variables(in text: String) -> [String] {
        var seen = Set<String>()
        return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).map { String(text[$0]) }
        }.filter { seen.insert($0).inserted }
    }

    func render(_ texts: [String]) throws(Failure) -> [String] {
        var unknown: [String] = []
        var unfilled: [String] = []
        for name in texts.flatMap(Self.variables(in:)) where !unknown.contains(name) && !unfilled.contains(name) {
            switch values[name] {
            case .some(.some(let value)) where !value.trimmingCharacters(in: .whitespaces).isEmpty:
                continue
            case .some:
                unfilled.append(name)
            case .none:
                let namespace = name.split(separator: ".").first.map(String.init) ?? ""
                if openNamespaces.contains(namespace) { unfilled.append(name) } else { unknown.append(name) }
            }
        }
        guard unknown.isEmpty, unfilled.isEmpty else { throw Failure(unknown: unknown, unfilled: unfilled) }
        return texts.map { text in
            let matches = Self.pattern.matches(in: text, range: NSRange(text.startIndex..., in: text))
            var result = text
            for match in matches.reversed() {
                guard let whole = Range(match.range, in: result), let name = Range(match.range(at: 1), in: result),
                    let value = values[String(result[name])] ?? nil
                else { continue }
                result.replaceSubrange(whole, with: value)
            }
            return result
        }
    }
}
