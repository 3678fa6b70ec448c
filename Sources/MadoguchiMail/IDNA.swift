import Foundation

/// Internationalized domain names in the form every relay and every header takes: A-labels
/// (`xn--…`, RFC 5890), so that a reply to `taro@日本語.jp` needs no SMTPUTF8 (RFC 6531) from the
/// relay. What people type is mapped first, as UTS #46 does for the cases Japanese customers give
/// us: full-width letters and digits (`ｅｘａｍｐｌｅ．ｊｐ`) become ASCII, `。` separates labels, and
/// letters are lower-cased. Only the domain is converted: a local part that is not ASCII still needs
/// SMTPUTF8, which no encoding can avoid.
public enum IDNA {
    /// The longest label (RFC 1035 §2.3.4), A-label prefix included.
    static let maximumLabelLength = 63

    /// `address` (`local@domain`) with its domain's labels as A-labels, when its local part is ASCII;
    /// otherwise, or when the domain cannot be converted, `address` unchanged.
    public static func asciiAddress(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return address }
        let local = address[..<at]
        let domain = String(address[address.index(after: at)...])
        guard local.utf8.allSatisfy({ $0 < 0x80 }), !domain.utf8.allSatisfy({ $0 < 0x80 }),
              let ascii = asciiDomain(domain)
        else { return address }
        return local + "@" + ascii
    }

    /// The domain with every label that is not ASCII as its A-label; nil when a label would be empty,
    /// longer than 63 characters, or hold anything but letters, digits, marks and hyphens once mapped
    /// (NFKC turns `＠` into `@` and `⒈` into `1.`: not a domain to write anywhere).
    public static func asciiDomain(_ domain: String) -> String? {
        // Each character as typed must map to label characters or be a dot: `⒈` maps to `1.`,
        // which would make a label of nothing a person wrote.
        for scalar in domain.unicodeScalars where !dots.contains(scalar) {
            guard String(scalar).precomposedStringWithCompatibilityMapping.lowercased().unicodeScalars.allSatisfy(isLabelScalar) else { return nil }
        }
        let mapped = domain.precomposedStringWithCompatibilityMapping.lowercased()
            .replacingOccurrences(of: "\u{3002}", with: ".")
        var labels: [String] = []
        for label in mapped.split(separator: ".", omittingEmptySubsequences: false) {
            guard label.unicodeScalars.allSatisfy(isLabelScalar) else { return nil }
            let ascii: String
            if label.utf8.allSatisfy({ $0 < 0x80 }) {
                ascii = String(label)
            } else {
                // No A-label is shorter than its label's characters: a longer label is refused before
                // Punycode, whose work grows with its length times its distinct characters (a forged
                // bounce's domain of 80,000 different ideographs).
                guard label.unicodeScalars.count <= maximumLabelLength, let encoded = punycode(label.unicodeScalars.map(\.value)) else { return nil }
                ascii = "xn--" + encoded
            }
            guard ascii.utf8.count <= maximumLabelLength else { return nil }
            labels.append(ascii)
        }
        // A trailing dot (the root) is kept as written; any other empty label is not a domain.
        guard labels.dropLast().allSatisfy({ !$0.isEmpty }), labels.first?.isEmpty == false else { return nil }
        return labels.joined(separator: ".")
    }

    /// Full stop, ideographic full stop, full-width full stop, half-width ideographic full stop.
    private static let dots: Set<Unicode.Scalar> = [".", "\u{3002}", "\u{FF0E}", "\u{FF61}"]

    /// ASCII letters, digits and hyphen (RFC 1123), or a letter, mark or digit beyond ASCII.
    private static func isLabelScalar(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            return (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") || scalar == "-"
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber:
            return true
        default:
            return false
        }
    }

    // MARK: - Punycode (RFC 3492)

    private static let base: UInt32 = 36, tMin: UInt32 = 1, tMax: UInt32 = 26
    private static let skew: UInt32 = 38, damp: UInt32 = 700, initialBias: UInt32 = 72, initialN: UInt32 = 128

    /// The Punycode of these code points (RFC 3492 §6.3), or nil on overflow (a label far beyond
    /// any length a domain allows).
    static func punycode(_ input: [UInt32]) -> String? {
        var output = input.filter { $0 < 0x80 }.map { Character(Unicode.Scalar($0)!) }
        let basicCount = UInt32(output.count)
        if basicCount > 0 { output.append("-") }
        var n = initialN, delta: UInt32 = 0, bias = initialBias, handled = basicCount
        while handled < UInt32(input.count) {
            // The smallest code point not yet handled.
            guard let next = input.filter({ $0 >= n }).min() else { return nil }
            let (step, stepOverflow) = (next - n).multipliedReportingOverflow(by: handled + 1)
            let (sum, sumOverflow) = delta.addingReportingOverflow(step)
            guard !stepOverflow, !sumOverflow else { return nil }
            delta = sum
            n = next
            for codePoint in input {
                if codePoint < n {
                    guard delta < UInt32.max else { return nil }
                    delta += 1
                }
                guard codePoint == n else { continue }
                // delta as a variable-length integer, least significant digit first.
                var q = delta
                var k = base
                while true {
                    let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                    if q < t { break }
                    output.append(digit(t + (q - t) % (base - t)))
                    q = (q - t) / (base - t)
                    k += base
                }
                output.append(digit(q))
                bias = adapt(delta, points: handled + 1, first: handled == basicCount)
                delta = 0
                handled += 1
            }
            delta += 1
            n += 1
        }
        return String(output)
    }

    /// The bias for the next delta (RFC 3492 §6.1).
    private static func adapt(_ delta: UInt32, points: UInt32, first: Bool) -> UInt32 {
        var delta = first ? delta / damp : delta / 2
        delta += delta / points
        var k: UInt32 = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + ((base - tMin + 1) * delta) / (delta + skew)
    }

    /// 0–25 are a–z, 26–35 are 0–9.
    private static func digit(_ value: UInt32) -> Character {
        Character(Unicode.Scalar(value < 26 ? value + 97 : value - 26 + 48)!)
    }
}
