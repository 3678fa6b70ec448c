import Foundation

/// Content-Transfer-Encoding (RFC 2045 §6), decoded forgivingly: real mail has base64 with garbage
/// and no padding, and quoted-printable with bad escapes. Neither decoder can fail or loop.
public enum TransferEncoding: Sendable, Equatable {
    case base64, quotedPrintable, identity

    /// `7bit`, `8bit`, `binary` and unknown values are all taken as the bytes themselves.
    public init(header: String?) {
        switch header?.trimmingWhitespace().lowercased() {
        case "base64": self = .base64
        case "quoted-printable": self = .quotedPrintable
        default: self = .identity
        }
    }

    public func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        switch self {
        case .base64: return Self.decodeBase64(bytes)
        case .quotedPrintable: return Self.decodeQuotedPrintable(bytes)
        case .identity: return Array(bytes)
        }
    }

    private static let base64Values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        // The URL-safe alphabet turns up too; it cannot be confused with the standard one.
        table[Int(UInt8(ascii: "-"))] = 62
        table[Int(UInt8(ascii: "_"))] = 63
        return table
    }()

    /// Skips every byte outside the alphabet, stops at padding, and keeps a trailing partial group.
    static func decodeBase64<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(bytes.count * 3 / 4)
        var accumulator: UInt32 = 0
        var count = 0
        for byte in bytes {
            if byte == UInt8(ascii: "=") {
                // Padding ends a group; a new group may follow (concatenated base64 blocks).
                flush(&accumulator, &count, into: &output)
                continue
            }
            let value = base64Values[Int(byte)]
            guard value != 0xFF else { continue }
            accumulator = accumulator << 6 | UInt32(value)
            count += 1
            if count == 4 {
                output.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                output.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                output.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator = 0
                count = 0
            }
        }
        flush(&accumulator, &count, into: &output)
        return output
    }

    private static func flush(_ accumulator: inout UInt32, _ count: inout Int, into output: inout [UInt8]) {
        switch count {
        case 2:
            output.append(UInt8(truncatingIfNeeded: accumulator >> 4))
        case 3:
            output.append(UInt8(truncatingIfNeeded: accumulator >> 10))
            output.append(UInt8(truncatingIfNeeded: accumulator >> 2))
        default: break  // 0, or a lone sextet that carries no whole byte
        }
        accumulator = 0
        count = 0
    }

    /// `=XX` escapes in either case, soft line breaks (`=` then optional white space and a line end);
    /// an `=` that starts neither is kept as it is.
    static func decodeQuotedPrintable<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        let input = Array(bytes)
        var output = [UInt8]()
        output.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            guard byte == UInt8(ascii: "=") else {
                output.append(byte)
                index += 1
                continue
            }
            if let high = hexValue(at: index + 1, in: input), let low = hexValue(at: index + 2, in: input) {
                output.append(high << 4 | low)
                index += 3
                continue
            }
            // Soft line break, allowing trailing white space some encoders leave before the newline.
            var look = index + 1
            while look < input.count, input[look] == 0x20 || input[look] == 0x09 { look += 1 }
            if look == input.count { index = look; continue }
            if input[look] == 0x0A { index = look + 1; continue }
            if input[look] == 0x0D {
                index = look + 1 < input.count && input[look + 1] == 0x0A ? look + 2 : look + 1
                continue
            }
            output.append(byte)
            index += 1
        }
        return output
    }

    private static func hexValue(at index: Int, in input: [UInt8]) -> UInt8? {
        guard index < input.count else { return nil }
        switch input[index] {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return input[index] - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return input[index] - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return input[index] - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
