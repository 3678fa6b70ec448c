import Crypto
import Foundation

/// A position in the event feed: the transaction id and event id of the last event handed out,
/// signed with the installation's key. Opaque to callers; a forged cursor, or one from another
/// installation, is a clear `400`, never a silently wrong position.
struct FeedCursor: Sendable, Equatable {
    var xid: UInt64
    var eventID: Int64

    /// Before every event.
    static let start = FeedCursor(xid: 0, eventID: 0)

    struct Key: Sendable {
        var installation: UUID
        var secret: [UInt8]
    }

    func encoded(with key: Key) -> String {
        let body = "e1.\(key.installation.lowercased).\(xid).\(eventID)"
        return Self.base64URL(Array(body.utf8)) + "." + Self.base64URL(Self.mac(body, key))
    }

    /// `field`: where the caller took it from (the `after` parameter or a `Last-Event-ID` header),
    /// for the problem that names it.
    static func decode(_ text: String, with key: Key, field: String = "after") throws -> FeedCursor {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard text.count <= 300, parts.count == 2, let body = fromBase64URL(String(parts[0])), let mac = fromBase64URL(String(parts[1])),
              let bodyText = String(bytes: body, encoding: .utf8)
        else { throw invalid(field, "is not a cursor this feed handed out") }
        let fields = bodyText.split(separator: ".")
        guard fields.count == 4, fields[0] == "e1", let installation = UUID(uuidString: String(fields[1])),
              let xid = UInt64(fields[2]), let eventID = Int64(fields[3])
        else { throw invalid(field, "is not a cursor this feed handed out") }
        guard installation == key.installation else {
            throw invalid(field, "comes from another Madoguchi installation (\(installation.lowercased)); start without a cursor to read this one's feed")
        }
        // Compared in constant time, like an API key's hash.
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: key.secret)) else {
            throw invalid(field, "was altered: its signature does not match")
        }
        return FeedCursor(xid: xid, eventID: eventID)
    }

    private static func mac(_ body: String, _ key: Key) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: SymmetricKey(data: key.secret)))
    }

    private static func invalid(_ field: String, _ why: String) -> Problem {
        Problem(.invalidCursor, status: .badRequest, title: "Invalid cursor", detail: "The cursor in \(field) \(why).",
                errors: [.init(pointer: field, message: why)])
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func fromBase64URL(_ text: String) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { [UInt8]($0) }
    }
}
