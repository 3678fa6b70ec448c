/// Finds an object that names one member twice in a JSON text.
///
/// RFC 8259 leaves such an object's meaning to the reader, and our two readers disagree: the contract
/// check (`JSONSerialization`) keeps the last value, the generated decoder (`JSONDecoder`) the first.
/// A body could then pass the check with one value and be handled with another (50 attachments
/// behind an empty list). Such a body is refused instead.
enum DuplicateMembers {
    /// The first member name found twice in one object of `json`, which must already be known to be
    /// valid JSON; nil when every object names each member once. Names are compared decoded, so
    /// `"a"` and `"\u0061"` are the same name.
    static func first(in json: [UInt8]) -> String? {
        var objects: [Set<String>?] = []   // nil for an array
        var expectingName = false
        var index = 0
        while index < json.count {
            switch json[index] {
            case UInt8(ascii: "{"):
                objects.append([])
                expectingName = true
            case UInt8(ascii: "["):
                objects.append(nil)
                expectingName = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                objects.removeLast()
                expectingName = false
            case UInt8(ascii: ","):
                expectingName = objects.last.map { $0 != nil } ?? false
            case UInt8(ascii: ":"):
                expectingName = false
            case UInt8(ascii: "\""):
                let (name, end) = string(in: json, after: index, decoding: expectingName)
                if expectingName, let name {
                    if objects[objects.count - 1]?.insert(name).inserted == false { return name }
                    expectingName = false
                }
                index = end
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// The string whose opening quote is at `start`: its decoded text when `decoding`, and the index of
    /// its closing quote.
    private static func string(in json: [UInt8], after start: Int, decoding: Bool) -> (String?, Int) {
        var index = start + 1
        var units: [UInt16] = []
        while index < json.count, json[index] != UInt8(ascii: "\"") {
            let byte = json[index]
            guard byte == UInt8(ascii: "\\") else {
                if decoding { units.append(contentsOf: rawUnits(json, at: &index)) } else { index += 1 }
                continue
            }
            let escaped = json[index + 1]
            index += 2
            guard decoding else {
                if escaped == UInt8(ascii: "u") { index += 4 }
                continue
            }
            switch escaped {
            case UInt8(ascii: "b"): units.append(0x08)
            case UInt8(ascii: "f"): units.append(0x0C)
            case UInt8(ascii: "n"): units.append(0x0A)
            case UInt8(ascii: "r"): units.append(0x0D)
            case UInt8(ascii: "t"): units.append(0x09)
            case UInt8(ascii: "u"):
                units.append(UInt16(String(decoding: json[index..<index + 4], as: UTF8.self), radix: 16) ?? 0xFFFD)
                index += 4
            default: units.append(UInt16(escaped))   // \" \\ \/
            }
        }
        return (decoding ? String(decoding: units, as: UTF16.self) : nil, index)
    }

    /// The UTF-16 units of the one UTF-8 character at `index`, which moves past it.
    private static func rawUnits(_ json: [UInt8], at index: inout Int) -> [UInt16] {
        let lead = json[index]
        let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        let end = min(index + length, json.count)
        defer { index = end }
        return Array(String(decoding: json[index..<end], as: UTF8.self).utf16)
    }
}
