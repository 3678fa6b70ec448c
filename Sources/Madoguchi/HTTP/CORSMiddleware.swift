import Foundation
import HTTPTypes
import Hummingbird

/// The web origins whose pages may call the API from a browser (`MADOGUCHI_CORS_ORIGINS`): a
/// dashboard served from its own site reads reports with `fetch` and follows the event stream with
/// `EventSource`, which a browser allows only when the answer names the page's origin.
public enum CORSOrigins: Sendable, Equatable {
    /// No page of another origin may read an answer (no CORS headers at all).
    case none
    /// Any origin. Safe as far as credentials go (the API takes keys, never cookies), but every site a
    /// key holder visits could then use a key it obtains.
    case any
    /// These origins, exactly as browsers send them (`https://dash.example.jp`, `http://localhost:3000`).
    case only(Set<String>)

    /// `*`, or origins separated by commas; each `scheme://host[:port]`, without a path.
    init(_ text: String) throws {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if items == ["*"] {
            self = .any
            return
        }
        var origins = Set<String>()
        for item in items {
            guard let url = URL(string: item), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
                  let host = url.host, !host.isEmpty, url.path.isEmpty, url.query == nil, url.user == nil
            else {
                throw ConfigurationError("MADOGUCHI_CORS_ORIGINS: '\(item)' is not an origin like https://dash.example.jp (scheme, host and port only), nor *")
            }
            origins.insert(item.lowercased())
        }
        self = origins.isEmpty ? .none : .only(origins)
    }

    /// What `Access-Control-Allow-Origin` says to a request from `origin`; nil when it may not read.
    func allowing(_ origin: String) -> String? {
        switch self {
        case .none: nil
        case .any: "*"
        case .only(let origins): origins.contains(origin.lowercased()) ? origin : nil
        }
    }
}

/// Answers browsers' preflight requests (`OPTIONS` with `Access-Control-Request-Method`) from the
/// allowed origins, and marks every answer to them as readable, errors included (a dashboard shows
/// the problem's detail, not "network error"). Outside `ProblemMiddleware`, before any key is looked
/// at: a preflight carries none.
struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: CORSOrigins

    /// Headers a page may send: the key, bodies, preconditions, retries, and a stream's resumption.
    static var allowedHeaders: String { "Authorization, Content-Type, Accept, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID, X-Request-Id" }
    /// Headers a page may read beyond the basic ones.
    static var exposedHeaders: String {
        "ETag, Link, Location, Content-Location, Content-Disposition, Retry-After, X-Request-Id, X-Data-As-Of, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard origins != .none else { return try await next(request, context) }
        guard let origin = request.headers[.origin], let allowed = origins.allowing(origin) else {
            var response = try await next(request, context)
            // Another origin's answer differs: a shared cache must not hand this one to it.
            if case .only = origins { response.headers.append(.init(name: .vary, value: "Origin")) }
            return response
        }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers = HTTPFields()
            headers[.accessControlAllowOrigin] = allowed
            headers[.accessControlAllowMethods] = "GET, HEAD, POST, PUT, PATCH, DELETE"
            headers[.accessControlAllowHeaders] = Self.allowedHeaders
            headers[.accessControlMaxAge] = "600"
            if case .only = origins { headers[.vary] = "Origin" }
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = allowed
        response.headers[.accessControlExposeHeaders] = Self.exposedHeaders
        if case .only = origins { response.headers.append(.init(name: .vary, value: "Origin")) }
        return response
    }
}
