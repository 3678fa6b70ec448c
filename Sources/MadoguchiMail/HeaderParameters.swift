import Foundation

/// A `Content-Type` or `Content-Disposition` value: the main value and its parameters (RFC 2045 §5.1),
/// with RFC 2231 continuations and charsets, and the encoded words that many mailers put in
/// filenames although RFC 2047 forbids it there.
public struct ParameterizedValue: Sendable, Equatable {
    /// Lower-cased: `text/plain`, `attachment`.
    public var value: String
    /// Names lower-cased, values decoded.
    public var parameters: [String: String]

    public subscript(_ name: String) -> String? { parameters[name.lowercased()] }

    public init(value: String, parameters: [String: String] = [:]) {
        self.value = value
        self.parameters = parameters
    }

    public init(raw: [UInt8]) {
        let text = HeaderText.bytesToText(raw)
        var scanner = ParameterScanner(Array(text.unicodeScalars))
        value = scanner.mainValue().lowercased()
        var plain: [String: String] = [:]
        var sections: [String: [(index: Int, extended: Bool, value: String)]] = [:]
        while let (name, rawValue) = scanner.nextParameter() {
            // name, name*, name*0, name*0*
            let parts = name.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
            if parts.count == 1 {
                plain[name] = plain[name] ?? rawValue
            } else {
                let index = Int(parts[1]) ?? 0
                let extended = name.hasSuffix("*")
                sections[parts[0], default: []].append((index, extended, rawValue))
            }
        }
        var parameters = plain.mapValues { HeaderText.decodeEncodedWords(in: $0) }
        for (name, pieces) in sections {
            parameters[name] = Self.joinContinuations(pieces.sorted { $0.index < $1.index })
        }
        self.parameters = parameters
    }

    /// RFC 2231 §3–4: sections in order; extended ones are percent-encoded in the charset named by
    /// the first section (`charset'language'…`).
    private static func joinContinuations(_ pieces: [(index: Int, extended: Bool, value: String)]) -> String {
        var charset: String?
        var bytes: [UInt8] = []
        for (position, piece) in pieces.enumerated() {
            guard piece.extended else {
                bytes += Array(piece.value.utf8)
                continue
            }
            var value = Substring(piece.value)
            if position == 0 {
                let fields = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                if fields.count == 3 {
                    charset = fields[0].isEmpty ? nil : String(fields[0])
                    value = fields[2]
                }
            }
            bytes += percentDecode(value)
        }
        let text = Charset.decode(bytes, label: charset).text
        return HeaderText.decodeEncodedWords(in: text)
    }

    private static func percentDecode(_ text: Substring) -> [UInt8] {
        let utf8 = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
               let byte = UInt8(String(decoding: utf8[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                output.append(byte)
                index += 3
            } else {
                output.append(utf8[index])
                index += 1
            }
        }
        return output
    }
}

/// A lenient scanner for `value; name=token; name="quoted \"string\""`. Unquoted values may hold
/// spaces (`name=My File.pdf`), a quoted value may lack its closing quote, and comments are skipped.
struct ParameterScanner {
    let scalars: [Unicode.Scalar]
    var index = 0

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    mutating func mainValue() -> String {
        var value = ""
        while index < scalars.count, scalars[index] != ";" {
            if scalars[index] == "(" { skipComment(); continue }
            if !isSpace(scalars[index]) { value.unicodeScalars.append(scalars[index]) }
            index += 1
        }
        return value
    }

    mutating func nextParameter() -> (String, String)? {
        while index < scalars.count {
            // Skip the separator and any empty parameters (";;").
            while index < scalars.count, scalars[index] == ";" || isSpace(scalars[index]) { index += 1 }
            guard index < scalars.count else { return nil }
            var name = ""
            while index < scalars.count, scalars[index] != "=", scalars[index] != ";" {
                if !isSpace(scalars[index]) { name.unicodeScalars.append(scalars[index]) }
                index += 1
            }
            guard index < scalars.count, scalars[index] == "=" else { continue }  // a name with no value
            index += 1
            while index < scalars.count, isSpace(scalars[index]) { index += 1 }
            let value = index < scalars.count && scalars[index] == "\"" ? quoted() : token()
            if !name.isEmpty { return (name.lowercased(), value) }
        }
        return nil
    }

    private mutating func quoted() -> String {
        index += 1
        var value = ""
        while index < scalars.count, scalars[index] != "\"" {
            if scalars[index] == "\\", index + 1 < scalars.count {
                index += 1
            }
            value.unicodeScalars.append(scalars[index])
            index += 1
        }
        index += 1
        // Anything up to the next ';' after the closing quote is junk.
        while index < scalars.count, scalars[index] != ";" { index += 1 }
        return value
    }

    private mutating func token() -> String {
        var value = ""
        while index < scalars.count, scalars[index] != ";" {
            value.unicodeScalars.append(scalars[index])
            index += 1
        }
        return value.trimmingWhitespace()
    }

    private mutating func skipComment() {
        var depth = 0
        while index < scalars.count {
            if scalars[index] == "(" { depth += 1 }
            if scalars[index] == ")" { depth -= 1; if depth == 0 { index += 1; return } }
            index += 1
        }
    }

    private func isSpace(_ scalar: Unicode.Scalar) -> Bool { scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n" }
}
