import HTTPTypes
import OpenAPIRuntime

/// Keeps the exact bytes of the gateway JSON endpoints (`/v1/inbound/webform`, `/sms`, `/chat`), which
/// are stored as received before the generated code decodes them; the handler reads them from
/// `RequestScope.rawBody`.
///
/// It runs inside the OpenAPI layer, after `AuthMiddleware`: a caller without a valid gateway key is
/// answered before a byte of its body is buffered. `BodyLimitMiddleware`, further out, has already
/// refused a declared length over the limit and cuts a chunked body off at it.
struct RawBodyCapture: ServerMiddleware {
    let operations: Set<String>
    let limit: Int

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard operations.contains(operationID), let body, let scope = RequestScope.current else { return try await next(request, body, metadata) }
        let bytes = try await [UInt8](collecting: body, upTo: limit)
        scope.rawBody = bytes
        return try await next(request, HTTPBody(bytes), metadata)
    }
}
