import Crypto
import Foundation

/// Signing as the Standard Webhooks specification says (standardwebhooks.com), so that a receiver's
/// existing library verifies what we send: `webhook-id`, `webhook-timestamp`, and
/// `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one `v1,…` per active
/// secret (space-separated), so a receiver rotating its secret accepts either.
enum StandardWebhooks {
    static let secretPrefix = "whsec_"

    /// A new secret: `whsec_` and 24 random bytes in base64.
    static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return secretPrefix + Data(bytes).base64EncodedString()
    }

    /// The key a secret stands for: the base64 after the prefix (the prefix is optional, as in the
    /// reference libraries).
    static func key(_ secret: String) -> [UInt8]? {
        let encoded = secret.hasPrefix(secretPrefix) ? String(secret.dropFirst(secretPrefix.count)) : secret
        return Data(base64Encoded: encoded).map { [UInt8]($0) }
    }

    static func signature(id: String, timestamp: Int, body: [UInt8], secret: String) -> String? {
        guard let key = key(secret) else { return nil }
        let signed = Array("\(id).\(timestamp).".utf8) + body
        return "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: key))).base64EncodedString()
    }

    /// The three headers of one attempt.
    static func headers(id: String, timestamp: Int, body: [UInt8], secrets: [String]) -> [(String, String)] {
        [
            ("webhook-id", id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", secrets.compactMap { signature(id: id, timestamp: timestamp, body: body, secret: $0) }.joined(separator: " ")),
        ]
    }
}
