import Foundation

/// Decoding of header text: RFC 2047 encoded words and raw 8-bit bytes.
public enum HeaderText {
    /// Unstructured text (Subject, Comments, display names): bytes read as UTF-8 or whatever charset
    /// they really are in, then encoded words decoded, then surrounding white space trimmed.
    public static func decode(_ raw: [UInt8]) -> String {
        decodeEncodedWords(in: bytesToText(raw)).trimmingCharacters(in: .whitespacesAndNewlines)
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
        guard text.contains("=?") else { return text }
        var output = ""
        var pendingBytes: [UInt8] = []
        var pendingCharset: String?
        var pendingSpace = ""
        let scalars = Array(text.unicodeScalars)
        var index = 0

        func flush() {
            if let charset = pendingCharset {
                output += Charset.decode(pendingBytes, label: charset).text
            }
            pendingBytes = []
            pendingCharset = nil
        }

        while index < scalars.count {
            if scalars[index] == "=", index + 1 < scalars.count, scalars[index + 1] == "?",
               let word = EncodedWord(scalars: scalars, at: index)
            {
                // Only white space since the previous encoded word: it is dropped.
                if pendingCharset != nil, pendingCharset != word.charset { flush() }
                pendingSpace = ""
                pendingCharset = word.charset
                pendingBytes += word.bytes
                index = word.end
                continue
            }
            let scalar = scalars[index]
            if pendingCharset != nil, scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n" {
                pendingSpace.unicodeScalars.append(scalar)  // kept only if no encoded word follows
                index += 1
                continue
            }
            flush()
            output += pendingSpace
            pendingSpace = ""
            output.unicodeScalars.append(scalar)
            index += 1
        }
        flush()
        output += pendingSpace
        return output
    }
}

/// One RFC 2047 encoded word, recognised strictly enough not to eat ordinary text.
struct EncodedWord {
    let charset: String
    let bytes: [UInt8]
    /// Index just past the closing `?=`.
    let end: Int

    init?(scalars: [Unicode.Scalar], at start: Int) {
        // =?charset?E?text?=
        var index = start + 2
        var charset = ""
        while index < scalars.count, scalars[index] != "?" {
            let scalar = scalars[index]
            guard scalar.isASCII, scalar.value > 32, charset.count < 64 else { return nil }
            charset.unicodeScalars.append(scalar)
            index += 1
        }
        guard index + 2 < scalars.count, !charset.isEmpty, scalars[index + 2] == "?" else { return nil }
        let encoding = scalars[index + 1]
        index += 3
        var text: [UInt8] = []
        while index + 1 < scalars.count, !(scalars[index] == "?" && scalars[index + 1] == "=") {
            let scalar = scalars[index]
            guard scalar.isASCII, scalar != " ", scalar != "\t", scalar != "\r", scalar != "\n" else { return nil }
            text.append(UInt8(scalar.value))
            index += 1
        }
        guard index + 1 < scalars.count else { return nil }
        // RFC 2231 §5: a language may follow the charset ("=?utf-8*ja?B?...?=").
        self.charset = String(charset.split(separator: "*", maxSplits: 1).first ?? "")
        switch encoding {
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
