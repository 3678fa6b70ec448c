import Foundation
import HTTPTypes

/// Opaque page cursors: a version tag and the sort key of the last row, base64url-encoded. Clients
/// pass them back untouched; anything we did not issue is a 400, never a silently wrong page.
enum PageCursor {
    static func encode(_ parts: [String]) -> String {
        let text = (["v1"] + parts).joined(separator: "|")
        return Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The parts of a cursor we issued with `count` parts.
    static func decode(_ cursor: String, count: Int) throws -> [String] {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            throw invalid
        }
        let parts = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == count + 1, parts[0] == "v1" else { throw invalid }
        return Array(parts.dropFirst())
    }

    static let invalid = Problem.invalidParameter(
        "cursor", "not a cursor of this listing: pass next_cursor from the previous page of the same request (the same filters and order) unchanged")

    /// An instant a cursor carries, in microseconds since 1970: nil when it is not one, or lies
    /// outside the years 1–9999, which no page of ours starts at (further out, PostgreSQL's
    /// arithmetic on it overflows: an error, not a page).
    static func microseconds(_ text: String) -> Int64? {
        guard let value = Int64(text), (-62_135_596_800_000_000...253_402_300_799_999_999).contains(value) else { return nil }
        return value
    }

    /// A page size within 1...200, 50 when not given.
    static func limit(_ requested: Int?) throws -> Int {
        guard let requested else { return 50 }
        guard (1...200).contains(requested) else { throw Problem.invalidParameter("limit", "must be between 1 and 200, got \(requested)") }
        return requested
    }

    /// Sets `Link: <same path and query, with cursor=next>; rel="next"` on the response when there is
    /// a next page. The target is relative to the request, as RFC 8288 allows.
    static func setLinkHeader(nextCursor: String?) {
        guard let nextCursor, let scope = RequestScope.current else { return }
        scope.setResponseHeader(.link, "<\(nextPage(of: scope.requestURI, cursor: nextCursor))>; rel=\"next\"")
    }

    /// The request's own path and query, its `cursor` replaced. The other parameters are copied as
    /// sent: decoding and encoding them again (URLComponents) turned `tag=c%2B%2B` into `tag=c++`,
    /// which reads back as "c  ", and the next page filtered on something else.
    static func nextPage(of requestURI: String, cursor: String) -> String {
        let mark = requestURI.firstIndex(of: "?")
        let path = mark.map { requestURI[..<$0] } ?? requestURI[...]
        let pairs = mark.map { requestURI[requestURI.index(after: $0)...].split(separator: "&") } ?? []
        let kept = pairs.filter { pair in
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return (String(name).removingPercentEncoding ?? String(name)) != "cursor"
        }
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let encoded = cursor.addingPercentEncoding(withAllowedCharacters: unreserved) ?? cursor
        return path + "?" + (kept.map(String.init) + ["cursor=" + encoded]).joined(separator: "&")
    }
}

extension HTTPField.Name {
    static let link = Self("Link")!
}
