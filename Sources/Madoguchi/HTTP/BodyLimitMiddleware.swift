import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Caps request bodies before anything buffers them: the generated OpenAPI code collects whole bodies
/// with no limit of its own.
///
/// A declared `Content-Length` over the limit is refused before a byte of the body is read. A chunked
/// body is counted as it streams and fails the request the moment it passes the limit. And the bodies
/// of all requests in flight together stay within `budget`: one that would pass it is answered `503`
/// with `Retry-After` before it is read, so a crowd of large uploads cannot exhaust memory.
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let budget: BodyBudget
    let defaultLimit: Int
    /// Larger (or smaller) limits for particular routes, such as the raw-mail gateway: path templates,
    /// `{…}` matching any one segment (`/v1/replies/{reply_id}/attachments`).
    let limitsByPath: [String: Int]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Nothing here inflates a body: a compressed one would be stored as received (a gzipped mail
        // kept as garbage) or refused as malformed JSON with a misleading message.
        if let encoding = request.headers[.contentEncoding], encoding.trimmingCharacters(in: .whitespaces).lowercased() != "identity" {
            throw Problem(.unsupportedMediaType, status: .unsupportedMediaType, title: "Unsupported media type",
                          detail: "Content-Encoding \(encoding.prefix(50)) is not taken; send the body uncompressed.",
                          headers: [.acceptEncoding: "identity"])
        }
        let limit = Self.limit(for: request.uri.path, in: limitsByPath) ?? defaultLimit
        if let declared = request.headers[.contentLength] {
            guard let length = Int(declared), length >= 0 else {
                throw Problem(.badRequest, status: .badRequest, title: "Bad request", detail: "Content-Length '\(declared)' is not a byte count.")
            }
            guard length <= limit else { throw Problem.payloadTooLarge(limit: limit) }
            return try await budget.holding(length) { try await next(request, context) }
        }
        guard request.headers[.transferEncoding] != nil else { return try await next(request, context) }
        var request = request
        let body = request.body
        request.body = RequestBody(asyncSequence: LimitedBody(base: body, limit: limit))
        return try await budget.holding(limit) { try await next(request, context) }
    }
}

extension BodyLimitMiddleware {
    /// The limit of the route `path` takes, matched as the router matches it (`RouteTable`), so that
    /// `/v1/inbound/email/` is the mail gateway too.
    static func limit(for path: String, in limits: [String: Int]) -> Int? {
        limits.first { template, _ in RouteTable.template(template, matches: path) }?.value
    }
}

/// The request bytes the server may hold at once, shared by all connections.
final class BodyBudget: Sendable {
    private let capacity: Int
    private let held = Mutex(0)

    init(bytes: Int) { capacity = bytes }

    /// Runs `work` with `bytes` of the budget held, or refuses at once when they do not fit. A request
    /// alone in flight always fits, whatever its size.
    func holding<Result>(_ bytes: Int, _ work: () async throws -> Result) async throws -> Result {
        guard bytes > 0 else { return try await work() }
        let admitted = held.withLock { held in
            guard held == 0 || held + bytes <= capacity else { return false }
            held += bytes
            return true
        }
        guard admitted else { throw Problem.serverBusy(retryAfterSeconds: 1) }
        defer { held.withLock { $0 -= bytes } }
        return try await work()
    }
}

/// A request body that throws `payloadTooLarge` once more than `limit` bytes have arrived.
struct LimitedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: RequestBody
    let limit: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let limit: Int
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else { return nil }
            seen += chunk.readableBytes
            if seen > limit { throw Problem.payloadTooLarge(limit: limit) }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), limit: limit)
    }
}
