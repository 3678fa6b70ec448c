import Hummingbird
import NIOCore

/// Keeps the exact bytes of gateway requests (`/v1/inbound/…` JSON endpoints and provider webhooks),
/// which must be stored as received — and, for webhooks, verified against the provider's signature —
/// before anything reads them. Runs after `BodyLimitMiddleware`, so what it
/// collects is already within the limit; the handler reads it from `RequestScope.rawBody`.
struct RawBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    let paths: Set<String>
    /// Paths under these prefixes too (the provider webhooks, one path per provider).
    var prefixes: [String] = []
    let limit: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard paths.contains(path) || prefixes.contains(where: path.hasPrefix), let scope = RequestScope.current else { return try await next(request, context) }
        var request = request
        let buffer = try await request.body.collect(upTo: limit)
        scope.rawBody = Array(buffer: buffer)
        request.body = RequestBody(buffer: buffer)
        return try await next(request, context)
    }
}
