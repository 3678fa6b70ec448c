/// One header field as it arrived, unfolded: the name, and the value's bytes (encoded words and raw
/// 8-bit text still in it; `HeaderText` decodes them).
public struct HeaderField: Sendable, Equatable {
    public let name: String
    public let rawValue: [UInt8]

    /// The value as unstructured text: encoded words decoded, 8-bit bytes read in whatever charset
    /// they are in (RFC 6532 UTF-8, or the raw Shift_JIS some carriers send), trimmed.
    public var text: String { HeaderText.decode(rawValue) }
}

/// The header section of a message or body part (RFC 5322 §2.2, with the obsolete syntax of §4.5).
public struct HeaderSection: Sendable, Equatable {
    public var fields: [HeaderField] = []

    /// The first field of that name (case-insensitive), decoded as unstructured text.
    public subscript(_ name: String) -> String? { field(name)?.text }

    public func field(_ name: String) -> HeaderField? {
        fields.first { Self.sameName($0.name, name) }
    }

    public func all(_ name: String) -> [HeaderField] {
        fields.filter { Self.sameName($0.name, name) }
    }

    /// Field names are printable ASCII (RFC 5322 §2.2): compared byte by byte, ignoring ASCII case,
    /// rather than through Foundation's locale-aware comparison, which was a sixth of parsing time.
    static func sameName(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        return zip(a.utf8, b.utf8).allSatisfy { x, y in x == y || (x | 0x20) == (y | 0x20) && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A }
    }

    /// The most fields kept from one header section; more is an attack or a loop, not a mail.
    static let fieldLimit = 5_000

    /// Splits `bytes` into a header section and the body after the first empty line.
    ///
    /// Never fails: a line that is not a header field ends the header section early (the rest is
    /// body) and is reported as a defect, as is a missing blank line. An mbox `From ` separator line at
    /// the very top is skipped.
    static func split(_ bytes: ArraySlice<UInt8>, defects: inout [String]) -> (HeaderSection, ArraySlice<UInt8>) {
        var section = HeaderSection()
        var current: (name: String, value: [UInt8])?
        var position = bytes.startIndex
        var firstLine = true

        func finish() {
            guard let field = current else { return }
            if section.fields.count < fieldLimit {
                section.fields.append(HeaderField(name: field.name, rawValue: field.value))
            } else if section.fields.count == fieldLimit {
                defects.append("more than \(fieldLimit) header fields; the rest were ignored")
                section.fields.append(HeaderField(name: "X-Madoguchi-Truncated", rawValue: []))
            }
            current = nil
        }

        while position < bytes.endIndex {
            let lineEnd = bytes[position...].firstIndex(of: 0x0A) ?? bytes.endIndex
            let next = lineEnd < bytes.endIndex ? lineEnd + 1 : lineEnd
            var line = bytes[position..<lineEnd]
            if line.last == 0x0D { line = line.dropLast() }
            defer { firstLine = false }

            if line.isEmpty {
                finish()
                return (section, bytes[next...])
            }
            if firstLine, isMboxSeparator(line) {
                position = next
                continue
            }
            if line.first == 0x20 || line.first == 0x09 {
                if current != nil {
                    current!.value += line
                } else {
                    defects.append("continuation line with no header field before it")
                }
                position = next
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")),
                  let name = fieldName(line[line.startIndex..<colon])
            else {
                finish()
                defects.append(section.fields.isEmpty
                    ? "the message does not start with a header field"
                    : "header section ended without a blank line")
                return (section, bytes[position...])
            }
            finish()
            var value = line[(colon + 1)...]
            while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
            current = (name, Array(value))
            position = next
        }
        finish()
        return (section, bytes[bytes.endIndex...])
    }

    /// `From sender date` before the first header of an mbox message (but not `From : …`, a header
    /// in obsolete syntax).
    private static func isMboxSeparator(_ line: ArraySlice<UInt8>) -> Bool {
        guard line.starts(with: Array("From ".utf8)) else { return false }
        return line.dropFirst(5).first(where: { $0 != 0x20 && $0 != 0x09 }) != UInt8(ascii: ":")
    }

    /// A field name is printable ASCII without a colon; obsolete syntax allows white space before the colon.
    private static func fieldName(_ bytes: ArraySlice<UInt8>) -> String? {
        var name = bytes
        while let last = name.last, last == 0x20 || last == 0x09 { name = name.dropLast() }
        guard !name.isEmpty, name.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { return nil }
        return String(decoding: name, as: UTF8.self)
    }
}
