import Foundation

/// One node of a message's MIME tree (RFC 2045–2049): its headers and either its (still
/// transfer-encoded) bytes, its sub-parts, or an encapsulated message.
public struct MIMEPart: Sendable {
    public var headers: HeaderSection
    public var contentType: ParameterizedValue
    public var disposition: ParameterizedValue?
    public var transferEncoding: TransferEncoding
    public var content: Content
    /// The part's own bytes, headers included.
    public var sourceBytes: ArraySlice<UInt8>

    public indirect enum Content: Sendable {
        case leaf(ArraySlice<UInt8>)
        case multipart([MIMEPart])
        /// `message/rfc822`: the encapsulated message's root part (its headers are the message's).
        case message(MIMEPart)
    }

    public var mediaType: String { contentType.value }
    public var isMultipart: Bool { if case .multipart = content { true } else { false } }

    /// The decoded bytes of a leaf (empty for containers).
    public var decodedBody: [UInt8] {
        if case .leaf(let bytes) = content { return transferEncoding.decode(bytes) }
        return []
    }

    /// The filename the sender gave (`Content-Disposition` filename, else `Content-Type` name), made
    /// safe to show and to offer for download (`SafeFileName`).
    public var filename: String? {
        let name = disposition?["filename"] ?? contentType["name"]
        guard let name = name?.trimmingWhitespaceAndNewlines(), !name.isEmpty else { return nil }
        return SafeFileName.clean(name)
    }

    public var contentID: String? {
        headers["Content-ID"].map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "<> \t")) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    public var isAttachmentDisposition: Bool { disposition?.value == "attachment" }
}

/// Parses bytes into a MIME tree with bounded depth and breadth, so no input can exhaust the stack or
/// take unbounded time; whatever is malformed is read as well as it can be and listed in `defects`.
struct MIMEParser {
    static let maximumDepth = 40
    static let maximumParts = 2_000

    var defects: [String] = []
    private var partCount = 0

    mutating func parseMessage(_ bytes: ArraySlice<UInt8>) -> MIMEPart {
        parsePart(bytes, depth: 0, defaultType: "text/plain")
    }

    private mutating func parsePart(_ bytes: ArraySlice<UInt8>, depth: Int, defaultType: String) -> MIMEPart {
        partCount += 1
        let (headers, body) = HeaderSection.split(bytes, defects: &defects)
        var contentType = headers.field("Content-Type").map { ParameterizedValue(raw: $0.rawValue) }
            ?? ParameterizedValue(value: defaultType, parameters: [:])
        if !contentType.value.contains("/") {
            if headers.field("Content-Type") != nil { defects.append("unreadable Content-Type '\(contentType.value)'") }
            contentType.value = defaultType
        }
        let disposition = headers.field("Content-Disposition").map { ParameterizedValue(raw: $0.rawValue) }
        let encoding = TransferEncoding(header: headers["Content-Transfer-Encoding"])
        var part = MIMEPart(headers: headers, contentType: contentType, disposition: disposition, transferEncoding: encoding, content: .leaf(body), sourceBytes: bytes)

        let tooDeep = depth >= Self.maximumDepth || partCount >= Self.maximumParts
        if contentType.value.hasPrefix("multipart/") {
            if tooDeep {
                defects.append("MIME structure deeper or wider than the limits; the rest is kept as raw bytes")
                part.contentType = ParameterizedValue(value: "application/octet-stream")
                return part
            }
            let childDefault = contentType.value == "multipart/digest" ? "message/rfc822" : "text/plain"
            var pieces: [ArraySlice<UInt8>]
            if let boundary = contentType["boundary"] {
                pieces = splitMultipart(body, boundary: Array(boundary.utf8))
                // The declared boundary appears nowhere, yet the body has boundary lines (a relay
                // rewrote one and not the other): split where the body's own lines say, as mail
                // clients do, when two parts or more come of it.
                if pieces.first?.count == body.count, let guessed = guessBoundary(body), guessed != boundary,
                   let alternative = guessedParts(body, boundary: guessed), alternative.count >= 2 {
                    defects.append("multipart boundary '\(boundary)' not in the body; split at '\(guessed)'")
                    pieces = alternative
                }
            } else if let guessed = guessBoundary(body), let guessedPieces = guessedParts(body, boundary: guessed) {
                defects.append("multipart boundary missing; guessed '\(guessed)'")
                pieces = guessedPieces
            } else {
                defects.append("multipart without a boundary; read as plain text")
                part.contentType = ParameterizedValue(value: "text/plain", parameters: ["charset": contentType["charset"] ?? ""])
                return part
            }
            // The limit holds across as well as down: past it, the remaining pieces stay one part of
            // raw bytes (a 25 MB mail of empty parts would otherwise be a million attachments).
            let budget = max(1, Self.maximumParts - partCount)
            var rest: ArraySlice<UInt8>?
            if pieces.count > budget, let last = pieces.last {
                defects.append("MIME structure deeper or wider than the limits; the rest is kept as raw bytes")
                rest = body[pieces[budget - 1].startIndex..<last.endIndex]
                pieces = Array(pieces.prefix(budget - 1))
            }
            var children = pieces.map { parsePart($0, depth: depth + 1, defaultType: childDefault) }
            if let rest {
                partCount += 1
                children.append(MIMEPart(headers: HeaderSection(), contentType: ParameterizedValue(value: "application/octet-stream"),
                                         disposition: nil, transferEncoding: .identity, content: .leaf(rest), sourceBytes: rest))
            }
            part.content = .multipart(children)
        } else if contentType.value == "message/rfc822" || contentType.value == "message/global" {
            guard !tooDeep else { return part }
            // Some mailers base64 an attached message; RFC 2046 forbids it, readers cope.
            let inner = encoding == .identity ? body : ArraySlice(encoding.decode(body))
            part.content = .message(parsePart(inner, depth: depth + 1, defaultType: "text/plain"))
        }
        return part
    }

    /// The parts a guessed boundary divides `body` into, when the guess is believable: one token,
    /// more than dashes (a signature's "-- " or a "-----Original Message-----" line is no boundary),
    /// every part starting with its header fields, and only the usual notice before the first, never
    /// a person's writing (which would otherwise be dropped as the preamble).
    private func guessedParts(_ body: ArraySlice<UInt8>, boundary guessed: String) -> [ArraySlice<UInt8>]? {
        guard !guessed.contains(where: \.isWhitespace), guessed.contains(where: { $0 != "-" && $0 != "=" && $0 != "_" }),
              Self.isOnlyMIMENotice(preambleBefore: "--" + guessed, in: body) else { return nil }
        var scratch = MIMEParser()
        let pieces = scratch.splitMultipart(body, boundary: Array(guessed.utf8))
        let startsWithHeaders = pieces.allSatisfy { piece in
            let head = String(decoding: piece.prefix(64), as: UTF8.self).lowercased().drop { $0 == "\r" || $0 == "\n" }
            return head.hasPrefix("content-") || head.hasPrefix("mime-version")
        }
        return startsWithHeaders ? pieces : nil
    }

    /// Whether the text before the first `delimiter` line is empty or the "This is a multi-part
    /// message in MIME format." notice mail programs put there.
    static func isOnlyMIMENotice(preambleBefore delimiter: String, in body: ArraySlice<UInt8>) -> Bool {
        let text = String(decoding: body.prefix(4096), as: UTF8.self)
        guard let range = text.hasPrefix(delimiter) ? text.startIndex..<text.startIndex : text.range(of: "\n" + delimiter) else { return false }
        let preamble = text[..<range.lowerBound].lowercased().filter { !$0.isWhitespace }
        return preamble.isEmpty || preamble.hasPrefix("thisisamulti-partmessage") || preamble.hasPrefix("thisisamultipartmessage")
            || preamble.hasPrefix("thisisamime")
    }

    /// A multipart with no boundary parameter: the first line that looks like `--something`.
    private func guessBoundary(_ body: ArraySlice<UInt8>) -> String? {
        var position = body.startIndex
        var lines = 0
        while position < body.endIndex, lines < 50 {
            let end = body[position...].firstIndex(of: 0x0A) ?? body.endIndex
            var line = body[position..<end]
            if line.last == 0x0D { line = line.dropLast() }
            if line.count > 2, line.starts(with: [0x2D, 0x2D]) {
                return String(decoding: line.dropFirst(2), as: UTF8.self).trimmingWhitespace()
            }
            position = end < body.endIndex ? end + 1 : end
            lines += 1
        }
        return nil
    }

    /// The byte ranges between boundary lines. The line break before a boundary belongs to it
    /// (RFC 2046 §5.1.1). Preamble and epilogue are dropped; a missing close delimiter ends the last
    /// part at the end of the body.
    private mutating func splitMultipart(_ body: ArraySlice<UInt8>, boundary: [UInt8]) -> [ArraySlice<UInt8>] {
        let delimiter = [0x2D, 0x2D] + boundary
        var parts: [ArraySlice<UInt8>] = []
        var partStart: Int?
        var position = body.startIndex
        var closed = false
        while position < body.endIndex {
            let lineEnd = body[position...].firstIndex(of: 0x0A) ?? body.endIndex
            let next = lineEnd < body.endIndex ? lineEnd + 1 : lineEnd
            // A boundary line holds the whole delimiter: one with a line break in it (a boundary
            // parameter decoded to "\n" from an encoded word or an RFC 2231 escape) matches no line.
            if position + delimiter.count <= lineEnd, body[position...].starts(with: delimiter) {
                var rest = body[(position + delimiter.count)..<lineEnd]
                let isClose = rest.starts(with: [0x2D, 0x2D])
                if isClose { rest = rest.dropFirst(2) }
                // Only white space may follow a boundary; otherwise it is a longer, different boundary.
                if rest.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                    if let start = partStart { parts.append(body[start..<lineBreakStart(before: position, from: start, in: body)]) }
                    if isClose {
                        closed = true
                        partStart = nil
                        break
                    }
                    partStart = next
                }
            }
            position = next
        }
        if let start = partStart {
            parts.append(body[start..<body.endIndex])
        }
        if !closed { defects.append(parts.isEmpty ? "multipart body has no boundary lines" : "multipart close delimiter missing") }
        if parts.isEmpty {
            // Read the whole body as one part rather than lose it.
            parts.append(body)
        }
        return parts
    }

    private func lineBreakStart(before position: Int, from start: Int, in body: ArraySlice<UInt8>) -> Int {
        var end = position
        if end > start, body[end - 1] == 0x0A { end -= 1 }
        if end > start, body[end - 1] == 0x0D { end -= 1 }
        return end
    }
}
