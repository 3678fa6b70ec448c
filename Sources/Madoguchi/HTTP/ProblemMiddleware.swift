import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import OpenAPIRuntime
import PostgresNIO
import _ConnectionPoolModule

/// Turns every error into an RFC 9457 `application/problem+json` response: our own `Problem`s, the
/// generated server's decoding and content-type errors, the router's unknown routes and wrong methods.
/// Anything else is a `500` whose detail is only the request id; the error itself goes to the log.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = problem(for: error, request: request)
            if problem.kind == .clientClosedRequest {
                context.logger.info("client closed the connection mid-request", metadata: ["error": "\(String(reflecting: error))"])
            } else if problem.status.code >= 500 {
                // PSQLError redacts itself in plain descriptions; the log is where its details belong.
                let cause = (error as? ServerError).map { String(reflecting: $0.underlyingError) } ?? String(reflecting: error)
                context.logger.error("request failed", metadata: ["error": "\(cause)", "operation": "\((error as? ServerError)?.operationID ?? "-")"])
            } else {
                context.logger.debug("request refused", metadata: ["problem": "\(problem.kind.rawValue)", "detail": "\(problem.detail)"])
            }
            return Self.render(problem, request: request, requestID: RequestScope.current?.requestID)
        }
    }

    func problem(for error: any Error, request: Request) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case _ where Self.isClientDisconnect(error):
            return .clientClosedRequest
        case _ where Self.isDatabaseOutage(error):
            return .databaseUnavailable
        case let error as ServerError:
            return Self.problem(for: error)
        case let error as HTTPError where error.status == .notFound:
            let allowed = routes.allowedMethods(forPath: request.uri.path)
            guard !allowed.isEmpty else {
                return .notFound("There is no route \(request.uri.path). The API is described at /openapi.yaml.")
            }
            return Problem(
                .methodNotAllowed,
                status: .methodNotAllowed,
                title: "Method not allowed",
                detail: "\(request.uri.path) does not take \(request.method.rawValue); it takes \(allowed.joined(separator: ", ")).",
                headers: [.allow: allowed.joined(separator: ", ")]
            )
        case let error as HTTPError where error.status.code < 500:
            return Problem(
                Self.kind(for: error.status),
                status: error.status,
                title: error.status.reasonPhrase,
                detail: error.body ?? error.status.reasonPhrase
            )
        default:
            return .internalError
        }
    }

    /// Whether reading the request failed because the client closed its connection: the HTTP parser's
    /// end of input mid-message, or the socket reset or already closed. The generated server wraps it.
    static func isClientDisconnect(_ error: any Error) -> Bool {
        switch error {
        case let error as ServerError: return isClientDisconnect(error.underlyingError)
        case is HTTPParserError: return true
        case let error as ChannelError: return [.eof, .ioOnClosedChannel, .alreadyClosed, .inputClosed].contains(error)
        case let error as IOError: return [ECONNRESET, EPIPE].contains(error.errnoCode)
        default: return false
        }
    }

    /// Whether the database, not the request, failed: no connection in time, the pool giving up on
    /// connecting, a connection lost mid-query, or the server shutting down or starting (SQLSTATE
    /// classes 08 and 57P). Such a request changed nothing and can be retried as it is.
    static func isDatabaseOutage(_ error: any Error) -> Bool {
        switch error {
        case let error as ServerError: return isDatabaseOutage(error.underlyingError)
        case is DatabaseUnavailable, is ConnectionPoolError, is ConnectionLost: return true
        case let error as PSQLError:
            if [.serverClosedConnection, .connectionError, .poolClosed].contains(error.code) { return true }
            guard let state = error.serverInfo?[.sqlState] else { return false }
            return state.hasPrefix("08") || state.hasPrefix("57P")
        default: return false
        }
    }

    /// The generated server wraps whatever went wrong around an operation; the cause decides the answer.
    static func problem(for error: ServerError) -> Problem {
        switch error.underlyingError {
        case let problem as Problem:
            return problem
        case let nested as ServerError:
            return problem(for: nested)
        case let decoding as DecodingError where error.operationInput == nil:
            // The request did not decode: the client's to fix. One that did decode and then met a
            // DecodingError in its handler met it in data of ours (a stored answer, a jsonb column):
            // that is the service's fault, a 500, never a "malformed request body".
            return problem(for: decoding, operation: error)
        case let underlying where underlying.sqlState == .checkViolation:
            // The generated server does not enforce maxLength or pattern; the schema's CHECKs do, and
            // name the column (`templates_name_check`). Anything caught here was rolled back whole.
            return .validationFailed([checkViolationField(underlying)])
        case let underlying where (underlying.sqlState?.isTransient ?? false) || underlying.sqlState == .lockNotAvailable:
            // A deadlock or serialization failure that outlasted the transaction's retries, or a row
            // lock held past the request's lock_timeout (an agent's row during a long deactivation,
            // met by a PATCH that assigns to them): rolled back whole, worth trying again.
            return .transactionConflict
        case let underlying where underlying.sqlState == .characterNotInRepertoire || underlying.sqlState == .untranslatableCharacter:
            // Valid JSON, but PostgreSQL text cannot hold U+0000; the transaction rolled back whole.
            return .validationFailed([.init(pointer: nil, message: "text fields cannot contain the NUL character (\\u0000)")])
        default:
            let status = error.httpStatus
            guard (400..<500).contains(status.code) else { return .internalError }
            return Problem(
                kind(for: status),
                status: status,
                title: status.reasonPhrase,
                // The runtime often repeats the underlying error as its cause; say it once.
                detail: [error.causeDescription, "\(error.underlyingError)"].uniqued.joined(separator: ": ")
            )
        }
    }

    static func checkViolationField(_ error: any Error) -> Problem.FieldError {
        let message = "is outside what this field allows (too long, empty, or not an allowed value)"
        guard let psql = error as? PSQLError, let constraint = psql.serverInfo?[.constraintName], let table = psql.serverInfo?[.tableName],
            constraint.hasPrefix(table + "_"), constraint.hasSuffix("_check")
        else { return .init(pointer: nil, message: "a value " + message) }
        let column = constraint.dropFirst(table.count + 1).dropLast("_check".count)
        return column.isEmpty ? .init(pointer: nil, message: "a value " + message) : .init(pointer: "/" + column, message: message)
    }

    /// A body or parameter that did not decode. The runtime reports both the same way, and its URI
    /// decoder keeps no coding path, so the offending value decides: a parameter's value quoted in
    /// the message is that parameter's fault, with a body or without (the runtime reads the path
    /// and the query before the body: `POST /v1/replies/null/send` had been a malformed body). A
    /// request without a body can only have failed on a parameter, found by its value's type.
    static func problem(for error: DecodingError, operation: ServerError) -> Problem {
        let (path, message) = describe(error)
        let fields = operation.request.headerFields
        let hasBody = (fields[.contentLength].flatMap(Int.init) ?? 0) > 0 || fields[.transferEncoding] != nil
        let query = operation.request.path.flatMap { URLComponents(string: $0)?.queryItems } ?? []
        let parameters = operation.requestMetadata.pathParameters.map { ($0.key, String($0.value)) }
            + query.map { ($0.name, $0.value ?? "") }
        // With a body, only an error with no place in it (the URI decoder's) can be a parameter's.
        // An empty value (`?ticket_id=`) is quoted as '': the parameter sent empty, when only one was.
        let empties = parameters.filter { $0.1.isEmpty }
        let quoted = hasBody && !path.isEmpty ? nil
            : parameters.first { !$0.1.isEmpty && (message.contains("'\($0.1)'") || message.hasSuffix(" \($0.1)")) }
                ?? (message.contains("''") && empties.count == 1 ? empties.first : nil)
        // No body where the operation reads one (`POST …/send` with nothing, or an empty chunked
        // one without a Content-Type): the JSON decoder's complaint is about the missing body, not
        // about a parameter, nor about JSON the caller never sent.
        if quoted == nil, path.isEmpty, message.contains("not valid JSON"), !hasBody || fields[.contentType] == nil {
            return Problem(.malformedBody, status: .badRequest, title: "Malformed request body",
                           detail: hasBody ? "This operation takes a JSON body (at least {}) as application/json; the request's was empty or not JSON."
                                           : "This operation takes a JSON body (at least {}); the request had none.")
        }
        if !hasBody || quoted != nil {
            let culprit = quoted
                ?? parameters.first { name, value in
                    (message.contains("integer") && Int(value) == nil) || (message.contains("boolean") && Bool(value) == nil)
                }
            guard let (name, value) = culprit else {
                return Problem(.invalidParameter, status: .badRequest, title: "Invalid parameter", detail: "A path or query parameter is invalid: \(message)")
            }
            if value.isEmpty {
                return .invalidParameter(name, "is empty: give it a value, or leave it out (\(message))")
            }
            if let allowed = Contract.bundled.allowedValues(operation: operation.operationID, parameter: name), !allowed.isEmpty {
                return .invalidParameter(name, "'\(value)' is not one of \(allowed.joined(separator: ", "))")
            }
            return .invalidParameter(name, "'\(value)' is not valid: \(message)")
        }
        let pointer = path.isEmpty ? nil : "/" + path.joined(separator: "/")
        // An enum member's wrong value: the decoder says only "Cannot initialize TicketStatus from
        // invalid String value resolved"; the contract knows what it may be.
        if case .dataCorrupted = error, let value = message.range(of: "from invalid String value ").map({ String(message[$0.upperBound...]) }),
           let allowed = Contract.bundled.allowedValues(operation: operation.operationID, bodyPath: path), !allowed.isEmpty {
            let said = "'\(Text.clean(String(value.prefix(100))))' is not one of \(allowed.joined(separator: ", "))"
            return Problem(.malformedBody, status: .badRequest, title: "Malformed request body",
                           detail: pointer.map { "\($0): \(said)" } ?? said, errors: [.init(pointer: pointer, message: said)])
        }
        return Problem(
            .malformedBody,
            status: .badRequest,
            title: "Malformed request body",
            detail: pointer.map { "\($0): \(message)" } ?? message,
            errors: [.init(pointer: pointer, message: message)]
        )
    }

    static func describe(_ error: DecodingError) -> (path: [String], message: String) {
        func keys(_ path: [any CodingKey]) -> [String] {
            path.map { $0.intValue.map(String.init) ?? $0.stringValue }
        }
        switch error {
        case .typeMismatch(let type, let context):
            return (keys(context.codingPath), "expected \(describe(type))")
        case .valueNotFound(let type, let context):
            return (keys(context.codingPath), "expected \(describe(type)), found null")
        case .keyNotFound(let key, let context):
            return (keys(context.codingPath + [key]), "is required")
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return (keys(context.codingPath), underlying.map { "\(context.debugDescription) \($0)" } ?? context.debugDescription)
        @unknown default:
            return ([], "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") || name.hasPrefix("OpenAPIObjectContainer") { return "an object" }
            return "a value of type \(name)"
        }
    }

    static func kind(for status: HTTPResponse.Status) -> Problem.Kind {
        switch status {
        case .badRequest: .badRequest
        case .unauthorized: .unauthenticated
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .notAcceptable: .notAcceptable
        case .contentTooLarge: .payloadTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .unprocessableContent: .validationFailed
        default: .badRequest
        }
    }

    static func render(_ problem: Problem, request: Request, requestID: String?) -> Response {
        let body = ProblemDocument(problem, instance: request.uri.path, requestID: requestID).json
        var headers = problem.headers
        headers[.contentType] = "application/problem+json"
        return Response(status: problem.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
