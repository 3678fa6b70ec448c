import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Checks a request against `openapi.yaml` (`Contract`) before the generated decoder sees it, for
/// every operation at once, so no handler has to remember a length or a range:
/// - query and header parameters (lengths, patterns, ranges, NUL): one 400 `invalid-parameter`
///   naming every parameter at fault;
/// - a JSON body: one 422 `validation-failed` naming every member at fault.
///
/// It runs after `AuthMiddleware`, so nothing is read for a caller without a key. It also keeps the
/// exact bytes of the gateway JSON endpoints (`rawBodyOperations`: `/v1/inbound/webform`, `/sms`,
/// `/chat`) in `RequestScope.rawBody`, where their handlers store them as received; those bodies may
/// be as large as a mail (`rawBodyLimit`), every other one `limit` (`BodyLimitMiddleware`, further out,
/// has already refused a declared length over the limit and cuts a chunked body off at it). A body
/// that is not JSON passes through untouched: the decoder's 400 says what is wrong with it.
struct ContractValidation: ServerMiddleware {
    let contract: Contract
    let limit: Int
    /// Operations whose JSON bodies may be larger than `limit` (a reply's attachment, in base64).
    var limitsByOperation: [String: Int] = [:]
    let rawBodyOperations: Set<String>
    let rawBodyLimit: Int

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        // Before the handler: the generated code checks Accept only as it writes the answer, after a
        // write has committed (a new API key, its secret then lost) or a CSV export has started.
        if let accept = request.headerFields[.accept], let offered = contract.successMediaTypes[operationID], !offered.isEmpty {
            if offered.contains("*/*") {
                // Any type (a file download): the handler checks Accept against the type the file has
                // (it keeps the header in `RequestScope`). The generated code would refuse a concrete
                // type (`Accept: application/pdf`) as not satisfied by the contract's wildcard.
                var request = request
                request.headerFields[.accept] = nil
                return try await intercept(request, body: body, metadata: metadata, operationID: operationID, next: next)
            }
            if !offered.contains(where: { AcceptHeader(accept).allows($0) }) { throw Problem.notAcceptable(offered: offered) }
        }
        let parameterProblems = contract.problems(
            inQuery: try Self.queryItems(of: request.path ?? ""),
            headers: request.headerFields.map { ($0.name.canonicalName, $0.value) },
            operation: operationID)
        if !parameterProblems.isEmpty { throw Problem.invalidParameters(parameterProblems) }

        let keepsRawBody = rawBodyOperations.contains(operationID)
        // No Content-Type, or a wildcard one, is decoded as JSON by the generated code (its first
        // choice), so it is checked as JSON too: skipping it let such a body past every length and count.
        let contentType = request.headerFields[.contentType]?.lowercased().trimmingCharacters(in: .whitespaces)
        let isJSON = contentType.map { $0.hasPrefix("application/json") || $0.hasPrefix("*/*") || $0.hasPrefix("application/*") } ?? true
        let takesJSON = isJSON && contract.requestBodies[operationID] != nil
        guard let body, keepsRawBody || takesJSON else {
            return try await next(request, body, metadata)
        }
        if takesJSON, let charset = contentType.flatMap(Self.charset), !["utf-8", "utf8"].contains(charset) {
            // JSON travels as UTF-8 (RFC 8259 §8.1). Read as UTF-8 regardless, a Shift_JIS form was
            // refused as "not valid JSON", which sent its developer looking at the JSON.
            throw Problem(.unsupportedMediaType, status: .unsupportedMediaType, title: "Unsupported media type",
                          detail: "JSON is taken in UTF-8 only (RFC 8259), not charset=\(charset.prefix(50)); convert the body to UTF-8 and send it again.")
        }
        let bytes = try await [UInt8](collecting: body, upTo: keepsRawBody ? rawBodyLimit : limitsByOperation[operationID] ?? limit)
        if takesJSON, JSONBreadth.exceedsLimit(bytes) {
            throw Problem(.malformedBody, status: .badRequest, title: "Malformed request body",
                          detail: "The body is too broad: over \(JSONBreadth.limit) ',' and ':' outside strings (about \(JSONBreadth.limit / 2) members); no request here needs that many.")
        }
        if keepsRawBody { RequestScope.current?.rawBody = bytes }
        guard isJSON, let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else {
            // Told why, where the decoder would say only "not valid JSON"; looked for only in a body
            // that did not parse, not in every one.
            if takesJSON, let offset = Self.firstInvalidUTF8(in: bytes) {
                throw Problem(.malformedBody, status: .badRequest, title: "Malformed request body",
                              detail: "The body is not UTF-8 (byte \(offset) is not part of a UTF-8 character): JSON is taken in UTF-8 only (RFC 8259). A body written in Shift_JIS or EUC-JP must be converted first.")
            }
            return try await next(request, HTTPBody(bytes), metadata)
        }
        if let name = DuplicateMembers.first(in: bytes) {
            throw Problem(.malformedBody, status: .badRequest, title: "Malformed request body",
                          detail: "The member \"\(name.prefix(100))\" appears twice in one object; send each member once.")
        }
        let problems = contract.problems(in: value, operation: operationID)
        if !problems.unreadable.isEmpty {
            let named = problems.unreadable.prefix(20).map { ($0.pointer.map { "\($0): " } ?? "") + $0.message }.joined(separator: "; ")
            throw Problem(.malformedBody, status: .badRequest, title: "Malformed request body", detail: named, errors: Array(problems.unreadable.prefix(100)))
        }
        if !problems.values.isEmpty { throw Problem.validationFailed(problems.values) }
        return try await next(request, HTTPBody(bytes), metadata)
    }

    /// The `charset` parameter of a Content-Type, lower-cased and unquoted; nil without one.
    static func charset(of contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "charset" else { continue }
            return pair[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
        }
        return nil
    }

    /// Where `bytes` stop being UTF-8; nil when they are.
    static func firstInvalidUTF8(in bytes: [UInt8]) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// The query's names and values, percent-decoded. Split by hand: Foundation's
    /// `URLComponents.percentEncodedQuery` setter stops the process on a malformed escape (`?a=%`),
    /// and this runs before any key is checked. What the generated decoder cannot read is refused
    /// here with a 400 naming it: a part without `=` or an empty one (the decoder threw an error
    /// that became a 500), and a broken escape (the decoder read it as an empty value, so `?category=100%`
    /// filtered on "" and answered an empty report). One `&` at the very end is harmless.
    static func queryItems(of path: String) throws -> [(name: String, value: String)] {
        guard let mark = path.firstIndex(of: "?") else { return [] }
        var pairs = path[path.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: false)
        if pairs.last?.isEmpty == true { pairs.removeLast() }
        var items: [(name: String, value: String)] = []
        for pair in pairs {
            let shown = String(pair.prefix(100))
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw Problem.invalidParameter(shown.isEmpty ? "(query)" : shown,
                                               pair.isEmpty ? "the query has an empty part (two & in a row, or one first)" : "is not name=value")
            }
            guard let name = pair[..<equals].removingPercentEncoding, let value = pair[pair.index(after: equals)...].removingPercentEncoding else {
                // Foundation refuses both alike: a % without two hex digits, and escapes whose bytes are no UTF-8 (`%FF%FE`).
                let escapes = pair.split(separator: "%", omittingEmptySubsequences: false).dropFirst()
                let wellFormed = escapes.allSatisfy { $0.count >= 2 && $0.prefix(2).allSatisfy { $0.isASCII && $0.isHexDigit } }
                throw Problem.invalidParameter(shown, wellFormed
                    ? "decodes to bytes that are not UTF-8 (percent-escape text as its UTF-8 bytes: あ is %E3%81%82)"
                    : "has a broken percent-escape (a % must be followed by two hexadecimal digits; send a literal % as %25)")
            }
            items.append((name, value))
        }
        return items
    }
}
