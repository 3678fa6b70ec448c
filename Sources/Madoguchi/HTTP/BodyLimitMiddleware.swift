import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Caps request bodies before anything buffers them: the generated OpenAPI code collects whole bodies
/// with no limit of its own.
///
/// A declared `Content-Length` over the limit is refused before a byte of the body is read. A chunked
/// body is counted as it streams and fails the request the moment it passes the limit. And the bodies
/// of all requests in flight together stay within `budget`, counted by the bytes that have arrived:
/// a request whose declared length does not fit beside them is answered `503` with `Retry-After`
/// before it is read, and a body that grows past what is left fails with the same answer. Counted by
/// declared lengths instead, a few hundred connections declaring a megabyte each and sending a byte
/// now and then (before any credential is checked, on the provider webhooks) held the whole budget,
/// and every upload was refused.
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
        var announced = 0
        if let declared = request.headers[.contentLength] {
            guard let length = Int(declared), length >= 0 else {
                throw Problem(.badRequest, status: .badRequest, title: "Bad request", detail: "Content-Length '\(declared)' is not a byte count.")
            }
            guard length <= limit else { throw Problem.payloadTooLarge(limit: limit) }
            guard length > 0 else { return try await next(request, context) }
            announced = length
        } else if request.headers[.transferEncoding] == nil {
            return try await next(request, context)
        }
        let holding = try budget.admit(announced)
        defer { budget.release(holding) }
        var request = request
        request.body = RequestBody(asyncSequence: CountedBody(base: request.body, limit: limit, budget: budget, holding: holding))
        return try await next(request, context)
    }
}

extension BodyLimitMiddleware {
    /// The limit of the route `path` takes, matched as the router matches it (`RouteTable`), so that
    /// `/v1/inbound/email/` is the mail gateway too.
    static func limit(for path: String, in limits: [String: Int]) -> Int? {
        limits.first { template, _ in RouteTable.template(template, matches: path) }?.value
    }
}

/// The request bytes the server may hold at once, shared by all connections: the bytes of bodies
/// that have arrived and whose requests are still being handled.
final class BodyBudget: Sendable {
    private let capacity: Int
    private let held = Mutex(0)

    init(bytes: Int) { capacity = bytes }

    /// What one request holds.
    final class Holding: Sendable {
        fileprivate let bytes = Atomic<Int>(0)
    }

    /// A holding for a request whose body announces `announced` bytes (0 when it does not say), or
    /// `503` at once when they do not fit beside what others hold. A request alone in flight always
    /// fits, whatever its size.
    func admit(_ announced: Int) throws -> Holding {
        let fits = held.withLock { held in held == 0 || held + announced <= capacity }
        guard fits else { throw Problem.serverBusy(retryAfterSeconds: 1) }
        return Holding()
    }

    /// Counts `bytes` more for `holding`, or `503` when they do not fit beside what others hold.
    func take(_ bytes: Int, for holding: Holding) throws {
        let taken = held.withLock { held in
            guard held == holding.bytes.load(ordering: .relaxed) || held + bytes <= capacity else { return false }
            held += bytes
            holding.bytes.add(bytes, ordering: .relaxed)
            return true
        }
        guard taken else { throw Problem.serverBusy(retryAfterSeconds: 1) }
    }

    func release(_ holding: Holding) {
        held.withLock { held in
            held -= holding.bytes.load(ordering: .relaxed)
            holding.bytes.store(0, ordering: .relaxed)
        }
    }
}

/// A request body counted into the budget as it arrives, that throws `payloadTooLarge` once more
/// than `limit` bytes have come (a chunked body; a declared length is never exceeded).
struct CountedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    /// How much of a body past its limit is read and dropped so that the 413 reaches the client.
    static let drainLimit = 1 << 20
    let base: RequestBody
    let limit: Int
    let budget: BodyBudget
    let holding: BodyBudget.Holding

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let limit: Int
        let budget: BodyBudget
        let holding: BodyBudget.Holding
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else { return nil }
            seen += chunk.readableBytes
            if seen > limit {
                // What the client has sent on is read and dropped (up to `drainLimit`) before the
                // 413: a connection closed with bytes unread is reset, and the reset can destroy the
                // answer before the client reads it (seen in a test: an empty reply instead of 413).
                var dropped = 0
                while dropped < CountedBody.drainLimit, let more = try? await base.next() { dropped += more.readableBytes }
                throw Problem.payloadTooLarge(limit: limit)
            }
            try budget.take(chunk.readableBytes, for: holding)
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), limit: limit, budget: budget, holding: holding)
    }
}
