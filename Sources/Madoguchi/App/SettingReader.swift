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

    /// A backoff's cap is the longest wait between attempts, so never below the first retry's delay:
    /// a cap of 0, read as "no cap", meant no backoff at all, every attempt used up within seconds.
    static func checkRetryCap(_ cap: Duration, _ capName: String, atLeast base: Duration, _ baseName: String) throws {
        guard cap >= base else {
            throw ConfigurationError("\(capName) (\(cap.components.seconds)) is below the first retry's delay, \(baseName) "
                                     + "(\(base.components.seconds)): the cap is the longest wait between attempts")
        }
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
