#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// Whether `needle` occurs in the string, compared byte for byte on UTF-8. Foundation's
    /// `contains` goes through NSString and UTF-16 and was most of the bounce checks' cost; a
    /// byte search is exact for the ASCII and UTF-8 phrases they look for.
    func containsUTF8(_ needle: String) -> Bool {
        var haystack = self
        var needle = needle
        return haystack.withUTF8 { hay in
            needle.withUTF8 { pin in
                guard !pin.isEmpty else { return true }
                guard hay.count >= pin.count, let hayBase = hay.baseAddress, let pinBase = pin.baseAddress else { return false }
                // memchr to the next occurrence of the first byte, then compare the rest (glibc's
                // memmem is not visible to Swift without _GNU_SOURCE).
                let first = Int32(pin[0])
                var offset = 0
                let lastStart = hay.count - pin.count
                while offset <= lastStart {
                    guard let found = memchr(hayBase + offset, first, lastStart - offset + 1) else { return false }
                    let position = UnsafeRawPointer(found) - UnsafeRawPointer(hayBase)
                    if memcmp(hayBase + position, pinBase, pin.count) == 0 { return true }
                    offset = position + 1
                }
                return false
            }
        }
    }

    /// Whether any of `needles` occurs in the string.
    func containsAnyUTF8(_ needles: [String]) -> Bool {
        needles.contains { containsUTF8($0) }
    }
}

extension StringProtocol {
    /// Whether the text starts with `lowercasePrefix` (ASCII, lowercase) in any ASCII case: what
    /// `lowercased().hasPrefix(_:)` answers for an ASCII prefix, without lowercasing the line.
    func hasASCIIPrefixIgnoringCase(_ lowercasePrefix: String) -> Bool {
        var bytes = utf8.makeIterator()
        for expected in lowercasePrefix.utf8 {
            guard let byte = bytes.next() else { return false }
            if (byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) != expected { return false }
        }
        return true
    }

    /// Where the first line (up to a line feed) for which `matches` holds begins; the first line
    /// itself is passed over when `skippingFirst`. Lines are found on the UTF-8 bytes: a line feed
    /// is always a Character of its own, so these are the lines a split by Character gives, at a
    /// fraction of its cost (the bounce checks' splits were a twentieth of parsing).
    func startOfFirstLine(skippingFirst: Bool = false, where matches: (SubSequence) -> Bool) -> Index? {
        let bytes = utf8
        var lineStart = bytes.startIndex
        while lineStart < bytes.endIndex {
            let lineEnd = bytes[lineStart...].firstIndex(of: 0x0A) ?? bytes.endIndex
            if !(skippingFirst && lineStart == bytes.startIndex), matches(self[lineStart..<lineEnd]) { return lineStart }
            lineStart = lineEnd < bytes.endIndex ? bytes.index(after: lineEnd) : bytes.endIndex
        }
        return nil
    }
}
