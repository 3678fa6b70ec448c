import Foundation

/// Decoding of header text: RFC 2047 encoded words and raw 8-bit bytes.
public enum HeaderText {
    /// Unstructured text (Subject, Comments, display names): bytes read as UTF-8 or whatever charset
    /// they really are in, then encoded words decoded, then surrounding white space trimmed.
    public static func decode(_ raw: [UInt8]) -> String {
        let text: String
        if raw.contains(where: { $0 >= 0x80 }), raw.indices.dropLast().contains(where: { raw[$0] == 0x3D && raw[$0 + 1] == 0x3F }) {
            // Encoded words holding raw 8-bit bytes (`=?iso-8859-1?Q?Caf<E9>?=`, common from old
            // mailers): each word is decoded from its bytes in its own charset, and only the text
            // between words is left to detection.
            text = decodeEncodedWords(units: raw.map(UInt32.init), eightBitPayloads: true) { bytesToText($0.map { UInt8($0) }) }
        } else {
            text = decodeEncodedWords(in: bytesToText(raw))
        }
        return text.trimmingWhitespaceAndNewlines()
    }

    /// Header bytes as text. RFC 6532 allows UTF-8; carriers and old clients send raw Shift_JIS or
    /// ISO-2022-JP escapes, which the charset detector recognises.
    static func bytesToText<Bytes: Collection<UInt8>>(_ raw: Bytes) -> String {
        if !raw.contains(where: { $0 >= 0x80 || $0 == 0x1B }) { return String(decoding: raw, as: UTF8.self) }
        return Charset.decode(raw, label: nil).text
    }

    /// Decodes every well-formed encoded word (`=?charset?B|Q?text?=`), leaving broken ones as
    /// written so nothing is lost. White space between adjacent encoded words is dropped (RFC 2047
    /// §6.2), and adjacent words in the same charset are joined before decoding, because mailers
    /// split multibyte characters (and ISO-2022-JP escape runs) across words.
    public static func decodeEncodedWords(in text: String) -> String {
        guard text.containsUTF8("=?") else { return text }
        return decodeEncodedWords(units: text.unicodeScalars.map(\.value), eightBitPayloads: false) { units in
            String(String.UnicodeScalarView(units.compactMap(Unicode.Scalar.init)))
        }
    }

    /// The scanner behind both: `units` are Unicode scalars, or raw bytes when `eightBitPayloads`
    /// (then an encoded word's text may hold bytes 0x80–0xFF, taken as bytes of its charset); `plain`
    /// turns the units between encoded words into text.
    private static func decodeEncodedWords(units: [UInt32], eightBitPayloads: Bool, plain: ([UInt32]) -> String) -> String {
        var output = ""
        var plainRun: [UInt32] = []
        var pendingBytes: [UInt8] = []
        var pendingCharset: String?
        var pendingSpace: [UInt32] = []
        var index = 0
        let equals = UInt32(UInt8(ascii: "=")), question = UInt32(UInt8(ascii: "?"))
        let whiteSpace: Set<UInt32> = [0x20, 0x09, 0x0D, 0x0A]

        func flushWords() {
            if let charset = pendingCharset {
                output += Charset.decode(pendingBytes, label: charset).text
            }
            pendingBytes = []
            pendingCharset = nil
        }
        func flushPlain() {
            if !plainRun.isEmpty { output += plain(plainRun) }
            plainRun = []
        }

        // Where the last failed word's text ran into white space or the end: no word starting before
        // it can end with `?=` either (its text would run into the same place first), so none is tried.
        // Without this, `=?a?Q?x` repeated a million times was a million scans of the rest of the field.
        var noWordBefore = 0
        while index < units.count {
            if index >= noWordBefore, units[index] == equals, index + 1 < units.count, units[index + 1] == question,
               let word = EncodedWord(units: units, at: index, eightBitPayloads: eightBitPayloads, textStoppedAt: &noWordBefore)
            {
                flushPlain()
                // Only white space since the previous encoded word: it is dropped.
                if pendingCharset != nil, pendingCharset != word.charset { flushWords() }
                pendingSpace = []
                pendingCharset = word.charset
                pendingBytes += word.bytes
                index = word.end
                continue
            }
            let unit = units[index]
            if pendingCharset != nil, whiteSpace.contains(unit) {
                pendingSpace.append(unit)  // kept only if no encoded word follows
                index += 1
                continue
            }
            flushWords()
            plainRun += pendingSpace
            pendingSpace = []
            plainRun.append(unit)
            index += 1
        }
        flushWords()
        plainRun += pendingSpace
        flushPlain()
        return output
    }
}

/// One RFC 2047 encoded word, recognised strictly enough not to eat ordinary text.
struct EncodedWord {
    let charset: String
    let bytes: [UInt8]
    /// Index just past the closing `?=`.
    let end: Int

    /// `textStoppedAt`: set when the word fails in its text, to where the text ran into white space,
    /// a byte it may not hold, or the end of the field.
    init?(units: [UInt32], at start: Int, eightBitPayloads: Bool, textStoppedAt: inout Int) {
        // =?charset?E?text?=
        let question = UInt32(UInt8(ascii: "?")), equals = UInt32(UInt8(ascii: "="))
        var index = start + 2
        var charset = ""
        while index < units.count, units[index] != question {
            let unit = units[index]
            guard unit > 32, unit < 0x80, charset.count < 64 else { return nil }
            charset.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            index += 1
        }
        guard index + 2 < units.count, !charset.isEmpty, units[index + 2] == question else { return nil }
        let encoding = units[index + 1]
        // Checked before the text is read: read first, a header of many "=?cs?X?" (no such
        // encoding) read every one to the end of the header, quadratic in its length.
        guard [UInt32(UInt8(ascii: "B")), UInt32(UInt8(ascii: "b")), UInt32(UInt8(ascii: "Q")), UInt32(UInt8(ascii: "q"))].contains(encoding)
        else { return nil }
        index += 3
        var text: [UInt8] = []
        while index + 1 < units.count, !(units[index] == question && units[index + 1] == equals) {
            let unit = units[index]
            guard ![0x20, 0x09, 0x0D, 0x0A].contains(unit), unit < (eightBitPayloads ? 0x100 : 0x80) else {
                textStoppedAt = index
                return nil
            }
            text.append(UInt8(unit))
            index += 1
        }
        guard index + 1 < units.count else {
            textStoppedAt = units.count
            return nil
        }
        // RFC 2231 §5: a language may follow the charset ("=?utf-8*ja?B?...?=").
        self.charset = String(charset.split(separator: "*", maxSplits: 1).first ?? "")
        switch Unicode.Scalar(encoding).map(Character.init) {
        case "B", "b":
            bytes = TransferEncoding.decodeBase64(text)
        case "Q", "q":
            bytes = TransferEncoding.decodeQuotedPrintable(text.map { $0 == UInt8(ascii: "_") ? 0x20 : $0 })
        default:
            return nil
        }
        end = index + 2
    }
}
