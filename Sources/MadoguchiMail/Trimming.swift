/// Foundation's `trimmingCharacters(in:)` for its two white-space sets, without bridging the string
/// to NSString and UTF-16: the parser trims every address, name and header value, and those
/// bridges were a tenth of its time. The sets are Foundation's exactly (a unit test compares every
/// scalar): `.whitespacesAndNewlines` is Unicode's White_Space property plus U+200B ZERO WIDTH
/// SPACE, and `.whitespaces` is that without the line and paragraph separators.
extension String {
    /// `trimmingCharacters(in: .whitespacesAndNewlines)`.
    func trimmingWhitespaceAndNewlines() -> String {
        trimming { $0.value == 0x200B || $0.properties.isWhitespace }
    }

    /// `trimmingCharacters(in: .whitespaces)`.
    func trimmingWhitespace() -> String {
        trimming { scalar in
            switch scalar.value {
            case 0x200B: true
            case 0x0A...0x0D, 0x85, 0x2028, 0x2029: false
            default: scalar.properties.isWhitespace
            }
        }
    }

    private func trimming(_ isSpace: (Unicode.Scalar) -> Bool) -> String {
        // Most values start and end with a visible ASCII character: nothing to trim, nothing to copy.
        if let first = utf8.first, let last = utf8.last, (0x21...0x7E).contains(first), (0x21...0x7E).contains(last) { return self }
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return String(scalars[first...last])
    }
}

extension Substring {
    /// `trimmingCharacters(in: .whitespacesAndNewlines)`.
    func trimmingWhitespaceAndNewlines() -> String { String(self).trimmingWhitespaceAndNewlines() }

    /// `trimmingCharacters(in: .whitespaces)`.
    func trimmingWhitespace() -> String { String(self).trimmingWhitespace() }
}
