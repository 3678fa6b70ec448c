import HTTPTypes
import Logging
import Synchronization

/// What the layers of one request share: its id and logger (set by `ObservabilityMiddleware`), and the
/// operation and caller (filled in by `AuthMiddleware` once the OpenAPI layer knows them).
///
/// Carried as a task-local so that generated handlers, which see no Hummingbird context, can log with
/// the request id and know who is calling.
public final class RequestScope: Sendable {
    @TaskLocal public static var current: RequestScope?

    public let requestID: String
    public let logger: Logger
    /// The path and query as requested, for building `Link` headers.
    public let requestURI: String
    /// The request's header fields, for handlers that verify a provider's signature over them.
    public let requestHeaders: HTTPFields
    /// The host (and port) the client called, from `Host` (HTTP/1) or `:authority` (HTTP/2).
    public let requestAuthority: String?
    /// The client's IP address as the socket sees it (a proxy's, behind one); nil in in-process tests.
    public let clientAddress: String?
    /// GET or HEAD alike reach a GET handler (HEAD is answered by it, without the body).
    public let requestMethod: HTTPRequest.Method
    private let state = Mutex(State())

    private struct State {
        var operationID: String?
        var principal: Principal?
        var rawBody: [UInt8]?
        var responseHeaders: HTTPFields = [:]
    }

    init(requestID: String, logger: Logger, requestURI: String, requestHeaders: HTTPFields = [:], requestAuthority: String? = nil,
         clientAddress: String? = nil, requestMethod: HTTPRequest.Method = .get) {
        self.clientAddress = clientAddress
        self.requestMethod = requestMethod
        self.requestID = requestID
        self.logger = logger
        self.requestURI = requestURI
        self.requestHeaders = requestHeaders
        self.requestAuthority = requestAuthority
    }

    public var operationID: String? {
        get { state.withLock { $0.operationID } }
        set { state.withLock { $0.operationID = newValue } }
    }

    /// Headers for the response that must go out exactly as written. The OpenAPI runtime
    /// percent-encodes the header values it serializes, which mangles an ETag's quotes and a Link's
    /// angle brackets; handlers put such headers here and `ObservabilityMiddleware` sets them.
    public func setResponseHeader(_ name: HTTPField.Name, _ value: String) {
        state.withLock { $0.responseHeaders[name] = value }
    }

    var responseHeaders: HTTPFields {
        state.withLock { $0.responseHeaders }
    }

    /// The request body exactly as it arrived, for gateway endpoints that must store it before the
    /// generated code decodes it (`ContractValidation` keeps them).
    public var rawBody: [UInt8]? {
        get { state.withLock { $0.rawBody } }
        set { state.withLock { $0.rawBody = newValue } }
    }

    public var principal: Principal? {
        get { state.withLock { $0.principal } }
        set { state.withLock { $0.principal = newValue } }
    }
}
