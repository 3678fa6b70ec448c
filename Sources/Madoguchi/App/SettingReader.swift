/// Reads typed settings from `MADOGUCHI_*` values, each malformed one an error that names its variable
/// rather than a silent fallback to the default.
struct SettingReader {
    /// The trimmed, non-empty value of a variable, or nil.
    let value: (String) -> String?

    func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let raw = value(name) else { return nil }
        guard let number = Int(raw), range.contains(number) else {
            throw ConfigurationError("\(name)=\(raw) is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    func seconds(_ name: String, in range: ClosedRange<Int>) throws -> Duration? {
        try integer(name, in: range).map { .seconds($0) }
    }

    func flag(_ name: String) throws -> Bool? {
        guard let raw = value(name) else { return nil }
        switch raw.lowercased() {
        case "true", "on", "1", "yes": return true
        case "false", "off", "0", "no": return false
        default: throw ConfigurationError("\(name)=\(raw) is not true or false")
        }
    }
}
