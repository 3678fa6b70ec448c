import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ISO-2022-JP (RFC 1468) for mail to Japanese mobile carriers: ASCII, JIS X 0201 Roman and JIS X 0208
/// exactly as glibc iconv maps them, and nothing else.
///
/// iconv converts one scalar at a time and the escapes are assembled here, because mail needs cuts
/// iconv cannot make by itself: an encoded word must begin and end in ASCII so it decodes alone, and a
/// body line too long for SMTP must be broken between characters, never inside an escape sequence or
/// a two-byte character. One encoder serves one composition (it caches and is not thread-safe).
final class ISO2022JPEncoder {
    /// One scalar in ISO-2022-JP: the escape that selects its character set, and its one or two bytes.
    struct Cell: Equatable {
        var designation: [UInt8]
        var bytes: [UInt8]
    }

    /// ESC ( B: ASCII, where every line and every encoded word must end.
    static let ascii: [UInt8] = [0x1B, 0x28, 0x42]
    /// ESC ( J (JIS X 0201 Roman: ¥ and ‾), ESC $ @ and ESC $ B (JIS X 0208): what RFC 1468 allows.
    private static let designations: Set<[UInt8]> = [ascii, [0x1B, 0x28, 0x4A], [0x1B, 0x24, 0x40], [0x1B, 0x24, 0x42]]

    private let descriptor: iconv_t
    private var cache: [Unicode.Scalar: Cell?] = [:]

    init?() {
        let descriptor = iconv_open("ISO-2022-JP", "UTF-8")
        guard descriptor != iconv_t(bitPattern: -1), let descriptor else { return nil }
        self.descriptor = descriptor
    }

    deinit { iconv_close(descriptor) }

    func canEncode(_ text: String) -> Bool { cells(text) != nil }

    /// Every scalar of `text` as a cell, or nil when one has no ISO-2022-JP form.
    func cells<Text: StringProtocol>(_ text: Text) -> [Cell]? {
        var cells: [Cell] = []
        cells.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard let cell = cell(scalar) else { return nil }
            cells.append(cell)
        }
        return cells
    }

    private func cell(_ scalar: Unicode.Scalar) -> Cell? {
        if let known = cache[scalar] { return known }
        let cell = convert(scalar)
        cache[scalar] = cell
        return cell
    }

    /// What iconv makes of one scalar from the initial state: `[designation] bytes [ESC ( B]`.
    private func convert(_ scalar: Unicode.Scalar) -> Cell? {
        // ESC, SO and SI would be read as shifts, and line ends are the caller's; other controls are not
        // text a phone should be sent. Tab is ordinary white space.
        guard scalar == "\t" || (scalar.value >= 0x20 && scalar.value != 0x7F) else { return nil }
        guard let output = iconvOne(scalar) else { return nil }
        var designation = Self.ascii
        var bytes = output[...]
        if bytes.first == 0x1B {
            guard bytes.count > 3 else { return nil }
            designation = Array(bytes.prefix(3))
            bytes = bytes.dropFirst(3)
            if bytes.suffix(3).elementsEqual(Self.ascii) { bytes = bytes.dropLast(3) }
        }
        guard Self.designations.contains(designation), (1...2).contains(bytes.count), !bytes.contains(0x1B) else { return nil }
        return Cell(designation: designation, bytes: Array(bytes))
    }

    private func iconvOne(_ scalar: Unicode.Scalar) -> [UInt8]? {
        var input = Array(String(scalar).utf8)
        var output = [UInt8](repeating: 0, count: 16)
        let produced = input.withUnsafeMutableBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { outputBuffer -> Int? in
                var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inputBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                var inLeft = inputBuffer.count
                var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outputBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                var outLeft = outputBuffer.count
                let converted = iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft)
                // Back to ASCII (writing ESC ( B if needed), which also clears the state for the next scalar.
                let reset = iconv(descriptor, nil, nil, &outPointer, &outLeft)
                return converted == -1 || reset == -1 || inLeft != 0 ? nil : outputBuffer.count - outLeft
            }
        }
        return produced.map { Array(output[..<$0]) }
    }
}

/// ISO-2022-JP bytes built cell by cell: a character set is designated only when it changes, and
/// `finish` returns to ASCII.
struct ISO2022JPWriter {
    private(set) var bytes: [UInt8] = []
    private var designation = ISO2022JPEncoder.ascii

    var isEmpty: Bool { bytes.isEmpty }

    /// The length the finished bytes would have with `cell` appended.
    func length(adding cell: ISO2022JPEncoder.Cell) -> Int {
        let switchCost = cell.designation == designation ? 0 : cell.designation.count
        let closeCost = cell.designation == ISO2022JPEncoder.ascii ? 0 : ISO2022JPEncoder.ascii.count
        return bytes.count + switchCost + cell.bytes.count + closeCost
    }

    mutating func append(_ cell: ISO2022JPEncoder.Cell) {
        if cell.designation != designation {
            bytes += cell.designation
            designation = cell.designation
        }
        bytes += cell.bytes
    }

    /// The bytes, ending in ASCII; the writer starts over empty.
    mutating func finish() -> [UInt8] {
        if designation != ISO2022JPEncoder.ascii { bytes += ISO2022JPEncoder.ascii }
        defer { self = ISO2022JPWriter() }
        return bytes
    }
}

extension ISO2022JPEncoder {
    /// A body as 7bit ISO-2022-JP lines joined by CRLF, each back in ASCII before its line end (RFC
    /// 1468); nil when a character cannot be encoded or a line would pass `limit` octets (SMTP allows
    /// 998, RFC 5321 §4.5.3.1.6). 7bit has no way to continue a line on the next: a line broken to fit
    /// reached the customer with a break the agent never wrote, and a long URL cut in two. Such a
    /// text goes as UTF-8 (`MailComposer.chooseCharset`), base64 keeping every line whole.
    func body(lines: [Substring], limit: Int = 998) -> [UInt8]? {
        var output: [UInt8] = []
        for (index, line) in lines.enumerated() {
            guard let cells = cells(line) else { return nil }
            var writer = ISO2022JPWriter()
            for cell in cells {
                guard writer.length(adding: cell) <= limit else { return nil }
                writer.append(cell)
            }
            if index > 0 { output += [0x0D, 0x0A] }
            output += writer.finish()
        }
        return output
    }

    /// `text` as RFC 2047 B-encoded words of at most `maximumLength` characters, or nil when a
    /// character cannot be encoded. Each word starts and ends in ASCII, so no word depends on another
    /// and no escape sequence or two-byte character is ever split between words.
    func encodedWords(_ text: String, maximumLength: Int) -> [String]? {
        guard let cells = cells(text) else { return nil }
        let capacity = EncodedWordWriter.capacity(charset: "ISO-2022-JP", maximumLength: maximumLength)
        var words: [[UInt8]] = []
        var writer = ISO2022JPWriter()
        for cell in cells {
            if !writer.isEmpty, writer.length(adding: cell) > capacity { words.append(writer.finish()) }
            writer.append(cell)
        }
        if !writer.isEmpty { words.append(writer.finish()) }
        return words.map { EncodedWordWriter.word(charset: "ISO-2022-JP", bytes: $0) }
    }
}

extension ISO2022JPEncoder {
    /// Rewrites what has an exact equivalent in JIS X 0208, so that everyday Japanese text can go to a
    /// phone as ISO-2022-JP. Only meaning-preserving changes: the code points Windows (CP932) uses for
    /// JIS characters become the ones glibc maps them to (～ is 〜, ∥ is ‖…), and half-width katakana
    /// become full-width, a following ﾞ or ﾟ joined to its kana (ｶﾞ is ガ). Anything else, ① or ㈱
    /// included, is left for the caller to find unencodable.
    static func normalize(_ text: String) -> String {
        var output = String.UnicodeScalarView()
        var afterHalfWidthKana = false
        for scalar in text.unicodeScalars {
            if afterHalfWidthKana, let kana = output.last, let joined = withSoundMark(kana, scalar) {
                output.removeLast()
                output.append(joined)
                afterHalfWidthKana = false
            } else if let full = fullWidth(scalar) {
                output.append(full)
                afterHalfWidthKana = true
            } else {
                output.append(jisEquivalents[scalar] ?? scalar)
                afterHalfWidthKana = false
            }
        }
        return String(output)
    }

    private static let jisEquivalents: [Unicode.Scalar: Unicode.Scalar] = [
        "\u{FF5E}": "\u{301C}",  // ～ FULLWIDTH TILDE → 〜 WAVE DASH
        "\u{2225}": "\u{2016}",  // ∥ PARALLEL TO → ‖ DOUBLE VERTICAL LINE
        "\u{FF0D}": "\u{2212}",  // － FULLWIDTH HYPHEN-MINUS → − MINUS SIGN
        "\u{FFE0}": "\u{00A2}",  // ￠ → ¢
        "\u{FFE1}": "\u{00A3}",  // ￡ → £
        "\u{FFE2}": "\u{00AC}",  // ￢ → ¬
        // JIS 1-29 is U+2015 to glibc and Windows but U+2014 to macOS; same character, same meaning.
        "\u{2014}": "\u{2015}",  // — EM DASH → ― HORIZONTAL BAR
    ]

    /// U+FF61…U+FF9F in order. The sound marks on their own become the spacing ゛ and ゜.
    private static let halfWidthKana = Array(
        "。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン゛゜".unicodeScalars)

    private static func fullWidth(_ scalar: Unicode.Scalar) -> Unicode.Scalar? {
        guard (0xFF61...0xFF9F).contains(scalar.value) else { return nil }
        return halfWidthKana[Int(scalar.value - 0xFF61)]
    }

    private static let voiceable = Set("カキクケコサシスセソタチツテトハヒフヘホ".unicodeScalars)
    private static let semiVoiceable = Set("ハヒフヘホ".unicodeScalars)

    /// The kana with a half-width ﾞ (U+FF9E) or ﾟ (U+FF9F) joined, when JIS X 0208 has the result.
    /// In Unicode the voiced form follows its kana (ガ = カ + 1, パ = ハ + 2); ヴ stands apart.
    private static func withSoundMark(_ kana: Unicode.Scalar, _ mark: Unicode.Scalar) -> Unicode.Scalar? {
        switch mark.value {
        case 0xFF9E where kana == "ウ": return "ヴ"
        case 0xFF9E where voiceable.contains(kana): return Unicode.Scalar(kana.value + 1)
        case 0xFF9F where semiVoiceable.contains(kana): return Unicode.Scalar(kana.value + 2)
        default: return nil
        }
    }
}
