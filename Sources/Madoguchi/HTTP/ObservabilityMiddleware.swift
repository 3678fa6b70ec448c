import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus

/// The outermost layer: gives every request an id (the caller's `X-Request-Id` when it is sane), puts it
/// on every log line and response, writes one access-log line, and counts the request by operation and
/// status. It sits outside `ProblemMiddleware`, so it sees errors as the responses the client gets.
struct ObservabilityMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: HTTPMetrics
    var trustedProxies = TrustedProxies.none

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let requestID = Self.acceptableRequestID(request.headers[.xRequestID]) ?? Self.makeRequestID()
        var context = context
        context.logger[metadataKey: "request_id"] = .string(requestID)
        let scope = RequestScope(requestID: requestID, logger: context.logger, requestURI: request.uri.description, requestHeaders: request.headers,
                                 requestAuthority: request.head.authority,
                                 clientAddress: trustedProxies.client(peer: (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress,
                                                                      forwardedFor: request.headers[.xForwardedFor]),
                                 requestMethod: request.method)

        var response: Response
        do {
            response = try await RequestScope.$current.withValue(scope) {
                try await next(request, context)
            }
        } catch {
            // ProblemMiddleware renders every error; anything reaching here escaped it.
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            response = ProblemMiddleware<Context>.render(.internalError, request: request, requestID: requestID)
        }
        if response.status.code < 400 {
            for field in scope.responseHeaders { response.headers[field.name] = field.value }
        } else {
            // An error keeps none of what the handler meant for its answer (Link, X-Data-As-Of), but
            // the key's rate-limit state is true of every answer (openapi: "every answer carries").
            for field in scope.responseHeaders where [.rateLimitLimit, .rateLimitRemaining, .rateLimitReset].contains(field.name) && response.headers[field.name] == nil {
                response.headers[field.name] = field.value
            }
        }
        response.headers[.xRequestID] = requestID

        let elapsed = ContinuousClock.now - start
        let operation = scope.operationID ?? context.endpointPath ?? "unmatched"
        metrics.record(operation: operation, method: request.method.rawValue, status: response.status.code, duration: elapsed)
        context.logger.log(
            level: response.status.code >= 500 ? .error : .info,
            "\(request.method) \(request.uri.path) \(response.status.code)",
            metadata: [
                "operation": .string(operation),
                "status": .stringConvertible(response.status.code),
                "duration_ms": .stringConvertible(elapsed.milliseconds),
                "principal": .string(scope.principal?.name ?? "-"),
            ]
        )
        return response
    }

    /// 1–128 characters of `A-Za-z0-9._-`: enough for UUIDs and tracing ids, nothing that could forge a log line.
    static func acceptableRequestID(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count) else { return nil }
        let allowed = value.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        return allowed ? value : nil
    }

    static func makeRequestID() -> String {
        UUID().uuidString.lowercased()
    }
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

extension HTTPField.Name {
    static let xRequestID = Self("X-Request-Id")!
}

/// Request counts and latencies by operation, method and status, exposed at `/metrics`.
struct HTTPMetrics: Sendable {
    let registry: PrometheusCollectorRegistry

    private static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    private nonisolated(unsafe) static let requests = MetricNameDescriptor(
        namespace: "madoguchi", subsystem: "http", metricName: "requests", unitName: "total",
        helpText: "HTTP requests answered, by OpenAPI operation, method and status."
    )
    private nonisolated(unsafe) static let durations = MetricNameDescriptor(
        namespace: "madoguchi", subsystem: "http", metricName: "request_duration", unitName: "seconds",
        helpText: "Time from the request head to the response head, by OpenAPI operation, method and status."
    )

    func record(operation: String, method: String, status: Int, duration: Duration) {
        let labels = [("operation", operation), ("method", method), ("status", String(status))]
        registry.makeCounter(descriptor: Self.requests, labels: labels).increment()
        registry.makeDurationHistogram(descriptor: Self.durations, labels: labels, buckets: Self.buckets).record(duration)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
