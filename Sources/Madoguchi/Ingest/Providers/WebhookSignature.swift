import Crypto
import Foundation

/// The providers' documented request-signing schemes, and verification against every secret that is
/// currently valid (two during a rotation: the new one first, the old one until the provider stops
/// using it).
package enum WebhookSignature {
    /// Twilio: Base64 of HMAC-SHA1, keyed with the auth token, over the full URL Twilio requested followed
    /// by every POST parameter as name and value with no separators, sorted by name.
    package static func twilio(url: String, parameters: [(name: String, value: String)], authToken: String) -> String {
        var signed = url
        for (name, value) in parameters.sorted(by: { ($0.name, $0.value) < ($1.name, $1.value) }) {
            signed += name + value
        }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(signed.utf8), using: SymmetricKey(data: Data(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// LINE: Base64 of HMAC-SHA256 of the raw request body, keyed with the channel secret.
    package static func line(body: [UInt8], channelSecret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(channelSecret.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// Vonage's SMS API `sig`: every parameter but `sig` sorted by name, written `&name=value` with any
    /// `&` or `=` in a value replaced by `_`; then MD5 of that text followed by the secret
    /// (`md5hash`, Vonage's default), or an HMAC of it keyed with the secret. Hex.
    static func vonage(parameters: [String: String], secret: String, method: VonageMethod) -> String {
        var signed = ""
        for name in parameters.keys.sorted() where name != "sig" {
            let value = parameters[name]!.replacingOccurrences(of: "&", with: "_").replacingOccurrences(of: "=", with: "_")
            signed += "&\(name)=\(value)"
        }
        let key = SymmetricKey(data: Data(secret.utf8))
        let message = Data(signed.utf8)
        let digest: [UInt8] = switch method {
        case .md5hash: Array(Insecure.MD5.hash(data: Data((signed + secret).utf8)))
        case .md5: Array(HMAC<Insecure.MD5>.authenticationCode(for: message, using: key))
        case .sha1: Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        case .sha256: Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
        case .sha512: Array(HMAC<SHA512>.authenticationCode(for: message, using: key))
        }
        return digest.lowercaseHex
    }

    enum VonageMethod: String, Sendable, CaseIterable {
        case md5hash, md5, sha1, sha256, sha512
    }

    /// Whether `presented` equals what one of the candidates signs to. Every comparison runs to the end
    /// (no early exit on the first differing byte), so timing does not tell an attacker how close a
    /// forgery came.
    static func matches(_ presented: String, anyOf expected: [String], ignoringCase: Bool = false) -> Bool {
        let presented = Array((ignoringCase ? presented.lowercased() : presented).utf8)
        var found = false
        for candidate in expected {
            let candidate = Array((ignoringCase ? candidate.lowercased() : candidate).utf8)
            guard candidate.count == presented.count else { continue }
            var difference: UInt8 = 0
            for (a, b) in zip(candidate, presented) { difference |= a ^ b }
            if difference == 0 { found = true }
        }
        return found
    }
}
