import HTTPTypes
import Hummingbird
import OpenAPIHummingbird
import OpenAPIRuntime
import Synchronization

/// The routes the OpenAPI handlers registered, kept so that a request for a known path with the wrong
/// method is answered `405` with `Allow`, not the router's bare `404`.
final class RouteTable: Sendable {
    private let routes = Mutex<[(method: HTTPRequest.Method, segments: [Substring])]>([])

    func add(method: HTTPRequest.Method, path: String) {
        routes.withLock { $0.append((method, path.split(separator: "/"))) }
    }

    /// The methods registered for the template the router would pick for `path`, sorted; empty for an
    /// unknown path. The router prefers a literal segment to a parameter (`/v1/inbound/email` is the
    /// email endpoint, never payload "email"), so only the most literal matching templates count:
    /// otherwise `GET /v1/inbound/email` would be told it may GET.
    func allowedMethods(forPath path: String) -> [String] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let matching = routes.withLock { routes in routes.filter { Self.template($0.segments, matches: segments) } }
        let literalness = { (template: [Substring]) in template.map { !Self.isParameter($0) } }
        guard let best = matching.map({ literalness($0.segments) }).max(by: { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }) else { return [] }
        let methods = Set(matching.filter { literalness($0.segments) == best }.map(\.method.rawValue))
        // The router answers HEAD wherever there is a GET (`Application+build`).
        return methods.union(methods.contains("GET") ? ["HEAD"] : []).sorted()
    }

    private static func isParameter(_ segment: Substring) -> Bool { segment.hasPrefix("{") && segment.hasSuffix("}") }

    /// Whether `path` is one the template `/v1/replies/{reply_id}/attachments` stands for, segment by
    /// segment as the router compares them (empty segments, `//` or a trailing `/`, count for nothing).
    static func template(_ template: String, matches path: String) -> Bool {
        Self.template(template.split(separator: "/"), matches: path.split(separator: "/"))
    }

    private static func template(_ template: [Substring], matches path: [Substring]) -> Bool {
        guard template.count == path.count else { return false }
        return zip(template, path).allSatisfy { pattern, segment in
            isParameter(pattern) || pattern == segment
        }
    }
}

/// Registers the generated handlers on the router while noting each route in a `RouteTable`.
struct RecordingTransport<Context: RequestContext>: ServerTransport {
    let router: Router<Context>
    let table: RouteTable

    func register(
        _ handler: @Sendable @escaping (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?),
        method: HTTPRequest.Method,
        path: String
    ) throws {
        table.add(method: method, path: path)
        router.register(handler, method: method, path: path)
    }
}
