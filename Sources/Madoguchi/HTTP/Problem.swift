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
    public static let payloadTooLarge = Self(rawValue: "payload-too-large")
    public static let unsupportedMediaType = Self(rawValue: "unsupported-media-type")
    public static let notReady = Self(rawValue: "not-ready")
    public static let internalError = Self(rawValue: "internal-error")
}

extension Problem {
    public static func notFound(_ what: String) -> Problem {
        Problem(.notFound, status: .notFound, title: "Not found", detail: what)
    }

    public static func invalidParameter(_ name: String, _ message: String) -> Problem {
        Problem(
            .invalidParameter,
            status: .badRequest,
            title: "Invalid parameter",
            detail: "\(name): \(message)",
            errors: [FieldError(pointer: name, message: message)]
        )
    }

    public static func validationFailed(_ errors: [FieldError]) -> Problem {
        let detail = errors.map { ($0.pointer.map { "\($0): " } ?? "") + $0.message }.joined(separator: "; ")
        return Problem(.validationFailed, status: .unprocessableContent, title: "Validation failed", detail: detail, errors: errors)
    }

    public static func payloadTooLarge(limit: Int) -> Problem {
        Problem(
            .payloadTooLarge,
            status: .contentTooLarge,
            title: "Payload too large",
            detail: "The request body is larger than this endpoint's limit of \(limit) bytes."
        )
    }

    public static let internalError = Problem(
        .internalError,
        status: .internalServerError,
        title: "Internal server error",
        detail: "The server failed to handle this request. The request id identifies it in the server's log."
    )
}

/// The JSON body of a problem response.
struct ProblemDocument: Encodable {
    var type: String
    var title: String
    var status: Int
    var detail: String
    var instance: String?
    var requestID: String?
    var errors: [Problem.FieldError]?

    enum CodingKeys: String, CodingKey {
        case type, title, status, detail, instance, errors
        case requestID = "request_id"
    }

    init(_ problem: Problem, instance: String?, requestID: String?) {
        self.type = problem.kind.uri
        self.title = problem.title
        self.status = problem.status.code
        self.detail = problem.detail
        self.instance = instance
        self.requestID = requestID
        self.errors = problem.errors.isEmpty ? nil : problem.errors
    }
}
