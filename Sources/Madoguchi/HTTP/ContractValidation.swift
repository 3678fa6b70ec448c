import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Checks a JSON request body against its schema in `openapi.yaml` (`Contract`) before the generated
/// decoder sees it, and answers what the contract forbids as one 422 naming every member at fault —
/// for every operation at once, so no handler has to remember a length or a range.
///
/// It runs after `AuthMiddleware` (nothing is read for a caller without a key) and reads at most
/// `limit` bytes (`BodyLimitMiddleware` has already refused more). A body that is not JSON passes
/// through untouched: the decoder's 400 says what is wrong with it. The gateway endpoints are left
/// out: they keep every request as sent and answer with their own per-field problems.
struct ContractValidation: ServerMiddleware {
    let contract: Contract
    let skipped: Set<String>
    let limit: Int

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let body, !skipped.contains(operationID), contract.requestBodies[operationID] != nil,
              request.headerFields[.contentType]?.lowercased().hasPrefix("application/json") ?? false
        else { return try await next(request, body, metadata) }
        let bytes = try await [UInt8](collecting: body, upTo: limit)
        if let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) {
            let problems = contract.problems(in: value, operation: operationID)
            if !problems.isEmpty { throw Problem.validationFailed(problems) }
        }
        return try await next(request, HTTPBody(bytes), metadata)
    }
}
