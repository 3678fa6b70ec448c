import Foundation
import HTTPTypes

/// An RFC 9457 problem: what every error path of the API answers with.
///
/// Domain code throws these; `ProblemMiddleware` renders them as `application/problem+json`. The `type`
/// is a stable URI clients can switch on; `detail` says precisely what was wrong with this request.
public struct Problem: Error, Sendable, Equatable {
    public var kind: Kind
    public var status: HTTPResponse.Status
    public var title: String
    public var detail: String
    public var errors: [FieldError]
    /// Extra response headers, such as `Allow` on a 405 or `WWW-Authenticate` on a 401.
    public var headers: HTTPFields
    /// Extension members (RFC 9457 §3.2) a client can act on, such as who holds a claim.
    public var members: [String: Member] = [:]

    public indirect enum Member: Sendable, Equatable, Encodable {
        case string(String)
        case int(Int)
        case strings([String])
        case object([String: Member])
        case array([Member])

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let value): try container.encode(value)
            case .int(let value): try container.encode(value)
            case .strings(let values): try container.encode(values)
            case .object(let object): try container.encode(object)
            case .array(let values): try container.encode(values)
            }
        }
    }

    public struct Kind: RawRepresentable, Sendable, Hashable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var uri: String { "https://madoguchi.dev/problems/\(rawValue)" }
    }

    public struct FieldError: Sendable, Equatable, Codable {
        /// A JSON pointer into the body (`/name`) or a parameter's name.
        public var pointer: String?
        public var message: String
        public init(pointer: String?, message: String) {
            self.pointer = pointer
            self.message = message
        }
    }

    public init(
        _ kind: Kind,
        status: HTTPResponse.Status,
        title: String,
        detail: String,
        errors: [FieldError] = [],
        headers: HTTPFields = [:]
    ) {
        self.kind = kind
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
    }
}

extension Problem.Kind {
    public static let badRequest = Self(rawValue: "bad-request")
    public static let invalidParameter = Self(rawValue: "invalid-parameter")
    public static let malformedBody = Self(rawValue: "malformed-body")
    public static let validationFailed = Self(rawValue: "validation-failed")
    public static let unauthenticated = Self(rawValue: "unauthenticated")
    public static let forbidden = Self(rawValue: "forbidden")
    public static let notFound = Self(rawValue: "not-found")
    public static let methodNotAllowed = Self(rawValue: "method-not-allowed")
    public static let notAcceptable = Self(rawValue: "not-acceptable")
    public static let rangeNotSatisfiable = Self(rawValue: "range-not-satisfiable")
    public static let payloadTooLarge = Self(rawValue: "payload-too-large")
    public static let unsupportedMediaType = Self(rawValue: "unsupported-media-type")
    public static let notReady = Self(rawValue: "not-ready")
    public static let claimHeld = Self(rawValue: "claim-held")
    public static let invalidTransition = Self(rawValue: "invalid-transition")
    public static let mergeRefused = Self(rawValue: "merge-refused")
    public static let ticketBusy = Self(rawValue: "ticket-busy")
    public static let preconditionFailed = Self(rawValue: "precondition-failed")
    public static let preconditionRequired = Self(rawValue: "precondition-required")
    public static let claimRequired = Self(rawValue: "claim-required")
    public static let newActivity = Self(rawValue: "new-activity")
    public static let replyNotDraft = Self(rawValue: "reply-not-draft")
    public static let approvalRequired = Self(rawValue: "approval-required")
    public static let replyChanged = Self(rawValue: "reply-changed")
    public static let ticketClosed = Self(rawValue: "ticket-closed")
    public static let identityTaken = Self(rawValue: "identity-taken")
    public static let alreadyMerged = Self(rawValue: "already-merged")
    public static let idempotencyKeyReused = Self(rawValue: "idempotency-key-reused")
    public static let providerMessageIDReused = Self(rawValue: "provider-message-id-reused")
    public static let alreadyProcessed = Self(rawValue: "already-processed")
    public static let internalError = Self(rawValue: "internal-error")
    public static let signatureInvalid = Self(rawValue: "signature-invalid")
    public static let unknownProvider = Self(rawValue: "unknown-provider")
    public static let recipientUndeliverable = Self(rawValue: "recipient-undeliverable")
    public static let deliveryNotHeld = Self(rawValue: "delivery-not-held")
    public static let invalidCursor = Self(rawValue: "invalid-cursor")
    public static let cursorExpired = Self(rawValue: "cursor-expired")
    public static let feedStalled = Self(rawValue: "feed-stalled")
    public static let clientClosedRequest = Self(rawValue: "client-closed-request")
    public static let serverBusy = Self(rawValue: "server-busy")
    public static let databaseUnavailable = Self(rawValue: "database-unavailable")
    public static let reportsBusy = Self(rawValue: "reports-busy")
    public static let reportTimeout = Self(rawValue: "report-timeout")
}

extension Problem {
    public static func notFound(_ what: String) -> Problem {
        Problem(.notFound, status: .notFound, title: "Not found", detail: what)
    }

    public static func invalidParameter(_ name: String, _ message: String) -> Problem {
        invalidParameters([FieldError(pointer: name, message: message)])
    }

    /// Query or header parameters at fault, each named (`pointer` is the parameter's name).
    public static func invalidParameters(_ errors: [FieldError]) -> Problem {
        Problem(.invalidParameter, status: .badRequest, title: "Invalid parameter", detail: detail(listing: errors), errors: errors)
    }

    public static func validationFailed(_ errors: [FieldError]) -> Problem {
        Problem(.validationFailed, status: .unprocessableContent, title: "Validation failed", detail: detail(listing: errors), errors: errors)
    }

    /// `pointer: message; …`, the detail of a problem listing field errors.
    private static func detail(listing errors: [FieldError]) -> String {
        errors.map { ($0.pointer.map { "\($0): " } ?? "") + $0.message }.joined(separator: "; ")
    }

    public static func payloadTooLarge(limit: Int) -> Problem {
        Problem(
            .payloadTooLarge,
            status: .contentTooLarge,
            title: "Payload too large",
            detail: "The request body is larger than this endpoint's limit of \(limit) bytes."
        )
    }

    /// Too much is in flight to take this request now; the caller should try again after the pause.
    public static func serverBusy(retryAfterSeconds: Int) -> Problem {
        Problem(.serverBusy, status: .serviceUnavailable, title: "Server busy",
                detail: "The server is holding as many request bodies as it may; try again in \(retryAfterSeconds) s.",
                headers: [.retryAfter: String(retryAfterSeconds)])
    }

    /// PostgreSQL rolled the transaction back as a deadlock victim, on every retry: nothing was
    /// written; the request can be sent again as it was.
    public static let transactionConflict = Problem(
        .serverBusy, status: .serviceUnavailable, title: "Server busy",
        detail: "Other requests held what this one needed, and it was rolled back; nothing was changed. Try again.",
        headers: [.retryAfter: "1"])

    /// As many reports as may run at once are running (`ReportGate`), and none ended in time.
    static func reportsBusy(concurrency: Int, retryAfterSeconds: Int) -> Problem {
        Problem(.reportsBusy, status: .serviceUnavailable, title: "Reports busy",
                detail: "\(concurrency) report\(concurrency == 1 ? " is" : "s are") running, as many as may run at once "
                    + "(MADOGUCHI_REPORT_CONCURRENCY), and none ended in time; try again in \(retryAfterSeconds) s.",
                headers: [.retryAfter: String(retryAfterSeconds)])
    }

    /// A report's statement ran past `MADOGUCHI_REPORT_TIMEOUT_SECONDS` and PostgreSQL stopped it.
    static func reportTimeout(seconds: Int) -> Problem {
        Problem(.reportTimeout, status: .serviceUnavailable, title: "Report took too long",
                detail: "The report ran longer than \(seconds) s (MADOGUCHI_REPORT_TIMEOUT_SECONDS) and was stopped. "
                    + "Ask for a shorter range, or take it as CSV, which has no time limit; or try again when the server is less busy.",
                headers: [.retryAfter: "30"])
    }

    /// PostgreSQL cannot be reached (or every connection stayed busy): nothing was written; retry.
    public static let databaseUnavailable = Problem(
        .databaseUnavailable, status: .serviceUnavailable, title: "Database unavailable",
        detail: "The database cannot be reached right now; nothing was changed. Try again shortly.",
        headers: [.retryAfter: "5"])

    /// The client went away before its request was read in full. Nobody receives this answer; its
    /// status (nginx's 499) keeps such requests out of the 5xx count an error-rate alarm watches.
    public static let clientClosedRequest = Problem(
        .clientClosedRequest,
        status: .init(code: 499, reasonPhrase: "Client Closed Request"),
        title: "Client closed request",
        detail: "The client closed the connection before the request was read in full."
    )

    public static let internalError = Problem(
        .internalError,
        status: .internalServerError,
        title: "Internal server error",
        detail: "The server failed to handle this request. The request id identifies it in the server's log."
    )
}

/// The JSON body of a problem response: the standard members, then the problem's extensions.
struct ProblemDocument: Encodable {
    var members: [String: Problem.Member] = [:]
    var type: String
    var title: String
    var status: Int
    var detail: String
    var instance: String?
    var requestID: String?
    var errors: [Problem.FieldError]?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(type, forKey: Key("type"))
        try container.encode(title, forKey: Key("title"))
        try container.encode(status, forKey: Key("status"))
        try container.encode(detail, forKey: Key("detail"))
        try container.encodeIfPresent(instance, forKey: Key("instance"))
        try container.encodeIfPresent(requestID, forKey: Key("request_id"))
        try container.encodeIfPresent(errors, forKey: Key("errors"))
        for (name, value) in members where !["type", "title", "status", "detail", "instance", "request_id", "errors"].contains(name) {
            try container.encode(value, forKey: Key(name))
        }
    }

    /// The document as the body of an answer (keys sorted, slashes as written).
    var json: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data(#"{"title":"Internal server error","status":500}"#.utf8)
    }

    init(_ problem: Problem, instance: String?, requestID: String?) {
        self.type = problem.kind.uri
        self.title = problem.title
        self.status = problem.status.code
        self.detail = problem.detail
        self.instance = instance
        self.requestID = requestID
        self.errors = problem.errors.isEmpty ? nil : problem.errors
        self.members = problem.members
    }
}
