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
        let tags = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=\(domain); s=\(selector); t=\(Int(date.timeIntervalSince1970)); "
            + "h=\(signed.joined(separator: ":")); bh=\(bodyHash); b="
        var input = ""
        for name in signed {
            // Each name once, so the last (bottom-most) instance is the one signed (RFC 6376 §5.4.2).
            guard let field = fields.last(where: { $0.name.lowercased() == name }) else { continue }
            input += DKIMCanonicalization.relaxedHeader(name: field.name, value: field.value) + "\r\n"
        }
        // The signature field itself, with an empty b=, and without its line end (§3.7).
        input += DKIMCanonicalization.relaxedHeader(name: "DKIM-Signature", value: " " + tags)
        let signature = try key.signature(for: Data(input.utf8), padding: .insecurePKCS1v1_5)
        // Folded at the tag separators: relaxed canonicalization reads the fold as the space it replaced.
        let field = "DKIM-Signature: " + tags.replacingOccurrences(of: "; ", with: ";\r\n ") + signature.rawRepresentation.base64EncodedString() + "\r\n"
        return Array(field.utf8) + message
    }
}

extension MailAddress {
    /// The part after the last `@`.
    var domain: String { address.lastIndex(of: "@").map { String(address[address.index(after: $0)...]) } ?? address }
}
