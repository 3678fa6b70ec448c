import Crypto
import Foundation
import MadoguchiMail
import _CryptoExtras

/// Signs outgoing mail for the From domain (RFC 6376: rsa-sha256, relaxed/relaxed), so that carrier
/// and free-mail filters, which score unsigned mail as spam, let replies through.
struct DKIMSigner: Sendable {
    let domain: String
    let selector: String
    private let key: _RSA.Signing.PrivateKey

    /// The fields signed when present, in this order. From must be; the rest bind the parts a
    /// forwarder must not change.
    static let signedFields = [
        "from", "to", "cc", "reply-to", "subject", "date", "message-id", "in-reply-to", "references",
        "mime-version", "content-type", "content-transfer-encoding", "auto-submitted",
    ]

    init(domain: String, key: DeliverySettings.DKIMKey) throws {
        self.domain = domain
        self.selector = key.selector
        do {
            self.key = try _RSA.Signing.PrivateKey(pemRepresentation: key.privateKeyPEM)
        } catch {
            throw ConfigurationError("MADOGUCHI_DKIM_KEY_FILE does not hold an RSA private key in PEM: \(error)")
        }
    }

    /// The message with a `DKIM-Signature` field in front.
    func sign(_ message: [UInt8], at date: Date = Date()) throws -> [UInt8] {
        let (fields, body) = DKIMCanonicalization.split(message)
        let bodyHash = Data(SHA256.hash(data: DKIMCanonicalization.relaxedBody(body))).base64EncodedString()
        let signed = Self.signedFields.filter { name in fields.contains { $0.name.lowercased() == name } }
        // Folded as it is sent: at the tag separators, and the h= list at a colon once its line is
        // long (FWS is allowed there, RFC 6376 §3.5). The signed input is the relaxed form of exactly
        // these bytes, so the folds cannot break the signature.
        let tags = ("v=1; a=rsa-sha256; c=relaxed/relaxed; d=\(domain); s=\(selector); t=\(Int(date.timeIntervalSince1970)); "
            + "h=\(Self.foldedNames(signed)); bh=\(bodyHash); b=").replacingOccurrences(of: "; ", with: ";\r\n ")
        var input = ""
        for name in signed {
            // Each name once, so the last (bottom-most) instance is the one signed (RFC 6376 §5.4.2).
            guard let field = fields.last(where: { $0.name.lowercased() == name }) else { continue }
            input += DKIMCanonicalization.relaxedHeader(name: field.name, value: field.value) + "\r\n"
        }
        // The signature field itself, with an empty b=, and without its line end (§3.7).
        input += DKIMCanonicalization.relaxedHeader(name: "DKIM-Signature", value: " " + tags)
        let signature = try key.signature(for: Data(input.utf8), padding: .insecurePKCS1v1_5)
        // The signature itself (344 characters for a 2048-bit key) is folded every 72 characters, so
        // every line stays within RFC 5322's 78: a verifier drops b='s value, folds and all (§3.5).
        let value = signature.rawRepresentation.base64EncodedString()
        let folded = stride(from: 0, to: value.count, by: 72).map { start in
            let from = value.index(value.startIndex, offsetBy: start)
            return String(value[from..<(value.index(from, offsetBy: 72, limitedBy: value.endIndex) ?? value.endIndex)])
        }.joined(separator: "\r\n ")
        let field = "DKIM-Signature: " + tags + folded + "\r\n"
        return Array(field.utf8) + message
    }

    /// `from:to:…` with a fold after a colon before a line would pass 70 characters.
    static func foldedNames(_ names: [String]) -> String {
        var output = "", line = 3  // " h="
        for (index, name) in names.enumerated() {
            if index > 0 {
                output += ":"
                line += 1
                if line + name.count > 70 {
                    output += "\r\n "
                    line = 1
                }
            }
            output += name
            line += name.count
        }
        return output
    }
}

extension MailAddress {
    /// The part after the last `@`.
    var domain: String { address.lastIndex(of: "@").map { String(address[address.index(after: $0)...]) } ?? address }

    /// The domain as it is written in headers and DKIM's `d=`: a Japanese domain as its A-label
    /// (`日本語.jp` → `xn--wgv71a119e.jp`), as the composer writes the From address. A Message-ID
    /// at the U-label was refused by the composer, and every reply with it.
    var asciiDomain: String { IDNA.asciiDomain(domain) ?? domain }
}
