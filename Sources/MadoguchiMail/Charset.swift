import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns bytes in a named (or unnamed, or wrongly named) charset into text.
///
/// Each charset goes to whichever decoder gets it right on this platform — measured, not assumed:
/// Shift_JIS as iconv `CP932` (plain `SHIFT_JIS` loses ① and ㈱ and maps ～ wrongly), EUC-JP as iconv
/// `EUC-JP-MS` (Foundation has none), ISO-2022-JP with Foundation, which keeps NEC row 13 and
/// half-width kana that iconv's ISO-2022-JP refuses or passes through raw. A label that does not fit
/// the bytes is overruled by what the bytes are; text is never stored as mojibake when a real decoding
/// exists, and U+FFFD appears only where no decoding does.
public enum Charset {
    public struct Decoded: Sendable, Equatable {
        public var text: String
        /// The charset actually used, which may differ from the label.
        public var charset: String
        /// Set when the label was wrong or missing, or when bytes had to be replaced.
        public var defect: String?
    }

    /// Decodes `bytes` labelled `label` (nil when the part named none).
    public static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes, label: String?) -> Decoded {
        let bytes = Array(bytes)
        let name = label.map(canonicalName) ?? ""
        let hasEscape = bytes.contains(0x1B)
        let isASCII = !bytes.contains { $0 >= 0x80 }

        // UTF-7 (RFC 2152, still sent by some Outlook versions) is all ASCII and means something else.
        if isASCII && !hasEscape && !name.hasPrefix("utf-16") && !name.hasPrefix("utf-32") && name != "utf-7" {
            return Decoded(text: String(decoding: bytes, as: UTF8.self), charset: "us-ascii")
        }
        // ISO-2022-JP's escapes under another label that is not stateful (a gateway that relabelled
        // the part ASCII or UTF-8, a mailer that wrote Shift_JIS): every such label would take the
        // escapes as text, so the bytes' own charset goes first.
        if isASCII, hasEscape, !name.hasPrefix("iso-2022"), !name.hasPrefix("utf-16"), !name.hasPrefix("utf-32"), name != "utf-7",
           hasISO2022JPEscape(bytes), let text = strictDecode(bytes, canonical: "iso-2022-jp") {
            return Decoded(text: text, charset: "iso-2022-jp", defect: "bytes labelled \(label ?? "") decoded as iso-2022-jp")
        }
        if !name.isEmpty, let text = strictDecode(bytes, canonical: name) {
            if let other = otherJapaneseReading(bytes, labelled: name, as: text) {
                return Decoded(text: other.text, charset: other.charset, defect: "bytes labelled \(label ?? "") decoded as \(other.charset)")
            }
            return Decoded(text: text, charset: name)
        }
        // The label is missing or does not fit: let the bytes say what they are.
        if let (text, detected) = detect(bytes) {
            let defect = name.isEmpty ? nil : "bytes labelled \(label ?? "") decoded as \(detected)"
            return Decoded(text: text, charset: detected, defect: defect)
        }
        let lossy = lossyDecode(bytes, canonical: name.isEmpty ? "utf-8" : name)
        return Decoded(text: lossy, charset: name.isEmpty ? "utf-8" : name,
                       defect: "undecodable bytes replaced with U+FFFD")
    }

    /// ESC $ B, ESC $ @ (JIS X 0208) or ESC ( I (half-width kana) somewhere in the bytes.
    static func hasISO2022JPEscape(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 3 else { return false }
        for index in 0..<(bytes.count - 2) where bytes[index] == 0x1B {
            let (first, second) = (bytes[index + 1], bytes[index + 2])
            if first == 0x24 && (second == 0x42 || second == 0x40) || first == 0x28 && second == 0x49 { return true }
        }
        return false
    }

    /// Lower-cased, aliases folded onto the decoder that handles them best. A comment after the
    /// label (RFC 2045 §5.1's own example: `charset=us-ascii (Plain text)`) is not part of it.
    static func canonicalName(_ label: String) -> String {
        let uncommented = label.firstIndex(of: "(").map { String(label[..<$0]) } ?? label
        let name = uncommented.trimmingCharacters(in: CharacterSet(charactersIn: "\"' \t")).lowercased()
        switch name {
        case "utf8", "utf-8", "unicode-1-1-utf-8", "x-unicode20utf8": return "utf-8"
        case "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us", "646", "7bit", "8bit", "default", "unknown-8bit", "x-unknown":
            return "us-ascii"
        case "iso-2022-jp", "iso2022jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-ms",
             "cp50220", "cp50221", "cp50222", "x-iso-2022-jp":
            return "iso-2022-jp"
        case "shift_jis", "shift-jis", "sjis", "x-sjis", "s-jis", "cp932", "windows-31j", "ms_kanji", "x-ms-cp932", "csshiftjis",
             "shift_jis-2004", "x-sjis-docomo", "x-sjis-kddi", "x-sjis-softbank", "sjis-win", "ibm-943":
            return "cp932"
        case "euc-jp", "eucjp", "x-euc-jp", "x-euc", "cseucpkdfmtjapanese", "euc-jp-ms", "eucjp-win", "eucjp-ms":
            return "euc-jp"
        case "gb2312", "gbk", "gb18030", "x-gbk", "cp936", "csgb2312", "euc-cn", "x-euc-cn", "chinese", "hz-gb-2312":
            return name == "hz-gb-2312" ? name : "gb18030"
        case "big5", "big5-hkscs", "x-big5", "cn-big5", "csbig5", "cp950":
            return "big5"
        case "euc-kr", "ks_c_5601-1987", "ks_c_5601", "ksc5601", "ks_c_5601-1989", "cp949", "x-windows-949", "korean", "csksc56011987", "uhc":
            return "cp949"
        case "iso-8859-1", "latin1", "iso8859-1", "iso_8859-1", "l1", "cp819", "ibm819", "us-ascii8", "windows-1252", "cp1252", "x-cp1252":
            // Mail labelled Latin-1 is in practice Windows-1252 (as the WHATWG encoding standard says).
            return "windows-1252"
        case "utf-7", "utf7", "unicode-1-1-utf-7", "x-unicode-2-0-utf-7", "csunicode11utf7", "x-utf-7": return "utf-7"
        case "utf-16", "utf16": return "utf-16"
        case "utf-32", "utf32": return "utf-32"
        default:
            // Hebrew's visual/logical variants (-e, -i) are the same bytes.
            if name.hasPrefix("iso-8859-8-") || name == "iso-8859-8i" { return "iso-8859-8" }
            if name.hasPrefix("iso-8859-6-") { return "iso-8859-6" }
            if name.hasPrefix("iso8859-") { return "iso-8859-" + name.dropFirst(8) }
            if name.hasPrefix("iso_8859-") { return "iso-8859-" + name.dropFirst(9) }
            if name.hasPrefix("cp125") { return "windows-" + name.dropFirst(2) }
            if name.hasPrefix("x-mac-") { return "mac" + name.dropFirst(6) }
            return name
        }
    }

    /// Decodes exactly as labelled, or nil if the bytes are not valid in that charset.
    static func strictDecode(_ bytes: [UInt8], canonical name: String) -> String? {
        switch name {
        case "utf-8":
            return String(validatingUTF8Bytes: bytes)
        case "us-ascii":
            return bytes.contains { $0 >= 0x80 } ? nil : String(decoding: bytes, as: UTF8.self)
        case "iso-2022-jp":
            // 8-bit bytes cannot be ISO-2022-JP; such mail is really Shift_JIS or UTF-8 mislabelled.
            guard !bytes.contains(where: { $0 >= 0x80 }) else { return nil }
            return ISO2022JP.decode(bytes)
        case "cp932": return Iconv.decode(bytes, from: "CP932")
        case "euc-jp": return Iconv.decode(bytes, from: "EUC-JP-MS") ?? Iconv.decode(bytes, from: "EUC-JP")
        case "gb18030": return Iconv.decode(bytes, from: "GB18030")
        case "big5": return Iconv.decode(bytes, from: "BIG5-HKSCS") ?? Iconv.decode(bytes, from: "CP950")
        case "cp949": return Iconv.decode(bytes, from: "CP949")
        case "windows-1252":
            // Five bytes are unassigned in 1252; Latin-1 maps them to C1 controls rather than failing.
            return Iconv.decode(bytes, from: "CP1252") ?? Iconv.decode(bytes, from: "ISO-8859-1")
        case "utf-16", "utf-32":
            return Iconv.decode(bytes, from: name.uppercased())
        default:
            return Iconv.decode(bytes, from: name.uppercased())
        }
    }

    /// What the bytes themselves say: ISO-2022-JP escapes, valid UTF-8, then CP932 against EUC-JP
    /// (both are often valid; the reading with more real Japanese wins), then Windows-1252.
    static func detect(_ bytes: [UInt8]) -> (String, String)? {
        if bytes.contains(0x1B), !bytes.contains(where: { $0 >= 0x80 }), let text = ISO2022JP.decode(bytes) {
            return (text, "iso-2022-jp")
        }
        if let text = String(validatingUTF8Bytes: bytes) { return (text, "utf-8") }
        let sjis = Iconv.decode(bytes, from: "CP932")
        let euc = Iconv.decode(bytes, from: "EUC-JP-MS")
        switch (sjis, euc) {
        case let (s?, e?): return japaneseScore(s) >= japaneseScore(e) ? (s, "cp932") : (e, "euc-jp")
        case let (s?, nil): if japaneseScore(s) > 0 { return (s, "cp932") }
        case let (nil, e?): if japaneseScore(e) > 0 { return (e, "euc-jp") }
        case (nil, nil): break
        }
        if let text = Iconv.decode(bytes, from: "CP1252") { return (text, "windows-1252") }
        return nil
    }

    /// EUC-JP labelled Shift_JIS (or the other way round) decodes without error into runs of
    /// half-width katakana: the other reading, when it is plainly Japanese (hiragana, which every
    /// sentence has, and a better score) and the labelled one is not.
    static func otherJapaneseReading(_ bytes: [UInt8], labelled name: String, as text: String) -> (text: String, charset: String)? {
        let other: (iconv: String, charset: String)
        switch name {
        case "cp932": other = ("EUC-JP-MS", "euc-jp")
        case "euc-jp": other = ("CP932", "cp932")
        default: return nil
        }
        let labelledScore = japaneseScore(text)
        guard labelledScore < 0, let reading = Iconv.decode(bytes, from: other.iconv) else { return nil }
        let hiragana = reading.unicodeScalars.filter { (0x3041...0x3096).contains($0.value) }.count
        guard hiragana >= 3, japaneseScore(reading) > labelledScore + 4 else { return nil }
        return (reading, other.charset)
    }

    /// Kana and common kanji count for a reading; half-width katakana and odd symbols count against
    /// (EUC-JP read as Shift_JIS turns into runs of half-width katakana).
    static func japaneseScore(_ text: String) -> Int {
        var score = 0
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x3040...0x30FF: score += 2                 // hiragana, katakana
            case 0x4E00...0x9FFF: score += 1                 // CJK ideographs
            case 0x3000...0x303F, 0xFF01...0xFF5E: score += 1 // Japanese punctuation, full-width ASCII
            case 0xFF61...0xFF9F: score -= 1                 // half-width katakana
            case 0xE000...0xF8FF: score -= 1                 // private use
            default: break
            }
        }
        return score
    }

    /// A best-effort reading that replaces what cannot be decoded.
    static func lossyDecode(_ bytes: [UInt8], canonical name: String) -> String {
        if name == "utf-8" || name == "us-ascii" { return String(decoding: bytes, as: UTF8.self) }
        return Iconv.decode(bytes, from: name == "cp932" ? "CP932" : name.uppercased(), lossy: true)
            ?? String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    /// The text if `bytes` are valid UTF-8, else nil (a BOM is dropped).
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var bytes = bytes[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(scalars)
    }
}

/// ISO-2022-JP through Foundation, which handles NEC row 13 (①, ㈱) and `ESC ( I` half-width kana;
/// where it gives up (au and docomo put emoji in rows JIS leaves unassigned), a decoder of our own
/// that reads mode by mode and writes 〓 (the geta mark Japanese software uses for an undecodable
/// character) for each cell no table has, so the rest of the text survives.
enum ISO2022JP {
    static func decode(_ bytes: [UInt8]) -> String? {
        // Foundation rejects a stream that ends in a two-byte mode; many mailers never switch back.
        var bytes = bytes
        if let last = lastEscape(bytes), last != [0x1B, 0x28, 0x42], last != [0x1B, 0x28, 0x4A] {
            bytes += [0x1B, 0x28, 0x42]
        }
        if let text = String(data: Data(bytes), encoding: .iso2022JP) { return text }
        return decodeByModes(bytes)
    }

    private enum Mode { case ascii, kana, jis0208, jis0212 }

    static func decodeByModes(_ bytes: [UInt8]) -> String {
        var mode = Mode.ascii
        var output = ""
        var cells: [[UInt8]] = []   // pending two-byte cells, in EUC-JP form

        func flush() {
            guard !cells.isEmpty else { return }
            if let text = Iconv.decode(cells.flatMap { $0 }, from: "EUC-JP-MS") {
                output += text
            } else {
                for cell in cells { output += Iconv.decode(cell, from: "EUC-JP-MS") ?? "〓" }
            }
            cells.removeAll()
        }

        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x1B, index + 2 < bytes.count {
                flush()
                switch (bytes[index + 1], bytes[index + 2]) {
                case (0x28, 0x42), (0x28, 0x4A): mode = .ascii; index += 3
                case (0x28, 0x49): mode = .kana; index += 3
                case (0x24, 0x40), (0x24, 0x42): mode = .jis0208; index += 3
                case (0x24, 0x28) where index + 3 < bytes.count:
                    mode = bytes[index + 3] == 0x44 ? .jis0212 : .jis0208
                    index += 4
                default: index += 1  // an escape we do not know: drop the ESC, keep the rest
                }
                continue
            }
            if byte == 0x0A || byte == 0x0D || byte < 0x21 || byte > 0x7E || mode == .ascii {
                flush()
                output.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
                continue
            }
            switch mode {
            case .kana:
                output.unicodeScalars.append(byte <= 0x5F ? Unicode.Scalar(0xFF61 + UInt32(byte - 0x21))! : Unicode.Scalar(byte))
                index += 1
            case .jis0208, .jis0212:
                guard index + 1 < bytes.count, (0x21...0x7E).contains(bytes[index + 1]) else {
                    output.unicodeScalars.append(Unicode.Scalar(byte))
                    index += 1
                    continue
                }
                cells.append((mode == .jis0212 ? [0x8F] : []) + [byte | 0x80, bytes[index + 1] | 0x80])
                index += 2
            case .ascii:
                index += 1
            }
        }
        flush()
        return output
    }

    private static func lastEscape(_ bytes: [UInt8]) -> [UInt8]? {
        guard let index = bytes.lastIndex(of: 0x1B), index + 2 < bytes.count else { return nil }
        return Array(bytes[index...index + 2])
    }
}

/// glibc iconv, to UTF-8.
enum Iconv {
    /// Converts `bytes` from `charset`; nil if the charset is unknown or (unless `lossy`) a byte
    /// sequence is invalid. Lossy mode replaces each bad byte with U+FFFD and carries on.
    static func decode(_ bytes: [UInt8], from charset: String, lossy: Bool = false) -> String? {
        let descriptor = iconv_open("UTF-8", charset)
        guard descriptor != iconv_t(bitPattern: -1) else { return nil }
        defer { iconv_close(descriptor) }
        if bytes.isEmpty { return "" }

        var output = [UInt8]()
        output.reserveCapacity(bytes.count * 3 / 2 + 16)
        var chunk = [UInt8](repeating: 0, count: 16_384)
        var input = bytes
        return input.withUnsafeMutableBufferPointer { inputBuffer -> String? in
            var inPointer = UnsafeMutableRawPointer(inputBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var inLeft = inputBuffer.count
            while true {
                let (result, produced, error) = chunk.withUnsafeMutableBufferPointer { chunkBuffer -> (Int, Int, Int32) in
                    var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(chunkBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                    var outLeft = chunkBuffer.count
                    var inOptional: UnsafeMutablePointer<CChar>? = inPointer
                    let result = iconv(descriptor, &inOptional, &inLeft, &outPointer, &outLeft)
                    let error = errno
                    inPointer = inOptional!
                    return (result, chunkBuffer.count - outLeft, error)
                }
                output += chunk[..<produced]
                if result != -1 && inLeft == 0 { break }
                if result == -1 && error == E2BIG { continue }
                if result == -1 {
                    guard lossy else { return nil }
                    output += [0xEF, 0xBF, 0xBD]
                    inPointer += 1
                    inLeft -= 1
                    if inLeft == 0 { break }
                    continue
                }
            }
            return String(decoding: output, as: UTF8.self)
        }
    }
}
