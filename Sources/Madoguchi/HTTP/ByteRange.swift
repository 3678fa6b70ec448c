/// What a `Range` header asks of a representation of `size` bytes (RFC 9110 §14.1.2, §14.2).
///
/// One byte range only: several (which would need a `multipart/byteranges` answer) are ignored, as the
/// RFC allows, and so is anything that is not a well-formed byte range: the whole representation.
enum ByteRange: Equatable {
    /// No usable range: the whole representation, `200`.
    case whole
    /// These bytes (first and last, inclusive), `206`.
    case part(ClosedRange<Int64>)
    /// Well formed, but it starts past the end (or asks for the last 0 bytes): `416`.
    case unsatisfiable

    init(header: String?, size: Int64) {
        guard let header else { self = .whole; return }
        let value = Substring(header).trimmingWhitespace
        guard value.count > 6, value.prefix(6).lowercased() == "bytes=" else { self = .whole; return }
        let spec = value.dropFirst(6).trimmingWhitespace
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { self = .whole; return }
        let (first, last) = (Self.number(spec[..<dash]), Self.number(spec[spec.index(after: dash)...]))
        switch (spec[..<dash].isEmpty, first, last) {
        case (true, _, let suffix?):
            // The last `suffix` bytes. Of an empty file none can be sent in a 206: the whole (empty) file.
            guard size > 0 else { self = .whole; return }
            guard suffix > 0 else { self = .unsatisfiable; return }
            self = .part(max(0, size - suffix)...(size - 1))
        case (false, let first?, let last) where spec[spec.index(after: dash)...].isEmpty || last != nil:
            if let last, last < first { self = .whole; return }
            guard first < size else { self = .unsatisfiable; return }
            self = .part(first...min(last ?? size - 1, size - 1))
        default:
            self = .whole
        }
    }

    /// Digits only, at most 18 of them (no sign, no overflow).
    private static func number(_ text: Substring) -> Int64? {
        guard (1...18).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int64(text)
    }
}

private extension Substring {
    var trimmingWhitespace: Substring {
        guard let start = firstIndex(where: { $0 != " " && $0 != "\t" }), let end = lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return self[start...end]
    }
}
