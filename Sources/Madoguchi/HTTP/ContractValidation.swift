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
        if let accept = request.headerFields[.accept], let offered = contract.successMediaTypes[operationID], !offered.isEmpty,
           !offered.contains(where: { AcceptHeader(accept).allows($0) }) {
            throw Problem.notAcceptable(offered: offered)
        }
        let parameterProblems = contract.problems(
            inQuery: Self.queryItems(of: request.path ?? ""),
            headers: request.headerFields.map { ($0.name.canonicalName, $0.value) },
            operation: operationID)
        if !parameterProblems.isEmpty { throw Problem.invalidParameters(parameterProblems) }

        let keepsRawBody = rawBodyOperations.contains(operationID)
        let isJSON = request.headerFields[.contentType]?.lowercased().hasPrefix("application/json") ?? false
        guard let body, keepsRawBody || (isJSON && contract.requestBodies[operationID] != nil) else {
            return try await next(request, body, metadata)
        }
        let bytes = try await [UInt8](collecting: body, upTo: keepsRawBody ? rawBodyLimit : limit)
        if keepsRawBody { RequestScope.current?.rawBody = bytes }
        if isJSON, let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) {
            if let name = DuplicateMembers.first(in: bytes) {
                throw Problem(.malformedBody, status: .badRequest, title: "Malformed request body",
                              detail: "The member \"\(name.prefix(100))\" appears twice in one object; send each member once.")
            }
            let problems = contract.problems(in: value, operation: operationID)
            if !problems.isEmpty { throw Problem.validationFailed(problems) }
        }
        return try await next(request, HTTPBody(bytes), metadata)
    }

    /// The query's names and values, percent-decoded; none when the query is not well-formed (the
    /// decoder answers that). Split by hand: Foundation's `URLComponents.percentEncodedQuery` setter
    /// stops the process on a malformed escape (`?a=%`), and this runs before any key is checked.
    static func queryItems(of path: String) -> [(name: String, value: String)] {
        guard let mark = path.firstIndex(of: "?") else { return [] }
        var items: [(name: String, value: String)] = []
        for pair in path[path.index(after: mark)...].split(separator: "&") {
            let equals = pair.firstIndex(of: "=")
            let name = equals.map { pair[..<$0] } ?? pair[...]
            let value = equals.map { pair[pair.index(after: $0)...] } ?? ""
            guard let decodedName = name.removingPercentEncoding, let decodedValue = value.removingPercentEncoding else { return [] }
            items.append((decodedName, decodedValue))
        }
        return items
    }
}
