import Foundation

/// RFC 6376 "relaxed" canonicalization (§3.4.2 and §3.4.4), for DKIM signing done elsewhere: hashing
/// and signing need crypto, which this module does not have.
public enum DKIMCanonicalization {
    /// Per line: runs of white space become one space and trailing white space goes; then empty lines
    /// at the end go, and a non-empty body ends in exactly one CRLF. A bare LF is taken as a line end
    /// (as OpenDKIM does), since the message is sent with CRLF anyway.
    public static func relaxedBody(_ body: [UInt8]) -> [UInt8] {
        var lines = body.split(separator: 0x0A, omittingEmptySubsequences: false)
        // After a final line end there is no further line.
        if body.last == 0x0A { lines.removeLast() }
        var canonical = lines.map { line in
            var line = line
            if line.last == 0x0D { line = line.dropLast() }
            return collapsingWhiteSpace(line, trimming: false)
        }
        while canonical.last?.isEmpty == true { canonical.removeLast() }
        return canonical.flatMap { $0 + [0x0D, 0x0A] }
    }

    /// `name:value` without the trailing CRLF: the name lower-cased, the value unfolded, white space
    /// runs made one space, and the white space around the colon and at the end removed.
    public static func relaxedHeader(name: String, value: String) -> String {
        let name = name.trimmingCharacters(in: CharacterSet(charactersIn: " \t")).lowercased()
        let unfolded = value.utf8.filter { $0 != 0x0D && $0 != 0x0A }
        let value = String(decoding: collapsingWhiteSpace(unfolded[...], trimming: true), as: UTF8.self)
        return name + ":" + value
    }

    /// Splits a message into its header fields, each with the name as written and the raw value after
    /// the colon (folding CRLFs kept, final CRLF not), and the body after the empty line.
    public static func split(_ message: [UInt8]) -> (headers: [(name: String, value: String)], body: [UInt8]) {
        var headers: [(name: String, value: String)] = []
        var position = 0
        while position < message.count {
            let lineEnd = message[position...].firstIndex(of: 0x0A) ?? message.count
            let next = min(lineEnd + 1, message.count)
            var line = message[position..<lineEnd]
            if line.last == 0x0D { line = line.dropLast() }
            if line.isEmpty { return (headers, Array(message[next...])) }
            if (line.first == 0x20 || line.first == 0x09), !headers.isEmpty {
                headers[headers.count - 1].value += "\r\n" + String(decoding: line, as: UTF8.self)
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                headers.append((String(decoding: line[..<colon], as: UTF8.self), String(decoding: line[(colon + 1)...], as: UTF8.self)))
            }
            position = next
        }
        return (headers, [])
    }

    /// SP and HTAB runs as one SP; with `trimming`, none at either end, else none at the end.
    private static func collapsingWhiteSpace(_ bytes: ArraySlice<UInt8>, trimming: Bool) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var pendingSpace = false
        for byte in bytes {
            if byte == 0x20 || byte == 0x09 {
                pendingSpace = true
                continue
            }
            if pendingSpace, !(trimming && output.isEmpty) { output.append(0x20) }
            pendingSpace = false
            output.append(byte)
        }
        return output
    }
}
