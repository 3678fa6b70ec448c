import Crypto
import Foundation

/// The text of an API key: `mdg_` + an 8-character public prefix + `_` + a 32-character secret.
///
/// The prefix finds the row; the whole key is only ever stored as its SHA-256 (the secret part carries
/// ~190 random bits, so a slow password hash would add nothing), and hashes are compared in constant time.
public struct APIKeySecret: Sendable, Equatable {
    public let text: String

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
    static let prefixLength = 8
    static let secretLength = 32

    /// A fresh key from the system's cryptographic random source.
    public static func generate() -> APIKeySecret {
        var generator = SystemRandomNumberGenerator()
        func randomCharacters(_ count: Int) -> String {
            String(decoding: (0..<count).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
        }
        return APIKeySecret(unchecked: "mdg_\(randomCharacters(prefixLength))_\(randomCharacters(secretLength))")
    }

    private init(unchecked text: String) { self.text = text }

    /// Accepts only the exact shape we issue, so that garbage never reaches the database.
    public init?(_ text: String) {
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "mdg",
            parts[1].utf8.count == Self.prefixLength, parts[2].utf8.count == Self.secretLength,
            text.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || Self.alphabet.contains($0) })
        else { return nil }
        self.text = text
    }

    /// `mdg_xxxxxxxx`: the public part shown in lists and used to find the key's row.
    public var prefix: String { String(text.prefix(4 + Self.prefixLength)) }

    public var hash: [UInt8] { Array(SHA256.hash(data: Array(text.utf8))) }

    /// Compares without an early exit, so timing says nothing about how much of a guess was right.
    static func constantTimeEquals(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
