import Foundation

/// JSON text, keys sorted, of the `[String: Any]` dictionaries the service builds for `jsonb`
/// columns: event data, message metadata, delivery reports. It writes what `JSONSerialization` with
/// `.sortedKeys` writes (minus the escaped `/`, which JSON does not need) at a fraction of its cost:
/// in a profile of mail ingest at one client, `JSONSerialization` took 4 % of the service's CPU.
///
/// Only the plain Swift values those dictionaries hold are written here: strings, `Bool`, integers,
/// finite `Double`s, arrays, nested dictionaries and `NSNull`. Anything else (an `NSNumber` from a
/// parsed document, whose Bool-or-number nature only Foundation knows) sends the whole object to
/// `JSONSerialization`, so the answer never depends on a guess.
enum JSONText {
    static func object(_ object: [String: Any]) throws -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        guard write(object, into: &bytes) else {
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// False when `value` holds something only Foundation should write.
    private static func write(_ value: Any, into bytes: inout [UInt8]) -> Bool {
        switch value {
        case let string as String:
            writeString(string, into: &bytes)
        case let dictionary as [String: Any]:
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                writeString(key, into: &bytes)
                bytes.append(UInt8(ascii: ":"))
                guard write(dictionary[key]!, into: &bytes) else { return false }
            }
            bytes.append(UInt8(ascii: "}"))
        case let array as [Any]:
            bytes.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                guard write(element, into: &bytes) else { return false }
            }
            bytes.append(UInt8(ascii: "]"))
        case is NSNull:
            bytes.append(contentsOf: "null".utf8)
        default:
            // Exact types only: on Linux an `Any` holding 1 never casts to Bool, but an NSNumber may
            // cast to both, and that one is Foundation's to decide.
            switch ObjectIdentifier(type(of: value)) {
            case ObjectIdentifier(Bool.self): bytes.append(contentsOf: (value as! Bool ? "true" : "false").utf8)
            case ObjectIdentifier(Int.self): bytes.append(contentsOf: String(value as! Int).utf8)
            case ObjectIdentifier(Int64.self): bytes.append(contentsOf: String(value as! Int64).utf8)
            case ObjectIdentifier(Int32.self): bytes.append(contentsOf: String(value as! Int32).utf8)
            case ObjectIdentifier(Double.self):
                let double = value as! Double
                guard double.isFinite else { return false }
                // Whole numbers as integers, as Foundation writes them ("2", not "2.0").
                bytes.append(contentsOf: (double == double.rounded() && abs(double) < 1e15 ? String(Int64(double)) : String(double)).utf8)
            default: return false
            }
        }
        return true
    }

    /// A JSON string: quote, backslash and the control characters escaped, everything else (all of
    /// UTF-8 beyond ASCII) as it is. NUL is written as `\u0000`, which `jsonb` refuses: a request
    /// carrying one is a 422, and text from outside (a relay's answer) is cleaned before it gets here.
    private static func writeString(_ string: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
