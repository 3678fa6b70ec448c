import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Authenticates `Authorization: Bearer` and checks the key's role against the operation, before the
/// generated code decodes anything. It runs inside the OpenAPI layer because only there is the
/// operation known; unknown routes never reach it and get their 404 without a key.
struct AuthMiddleware: ServerMiddleware {
    let database: Database
    let keys: APIKeyStore
    /// Per-key limits, checked once the key is known and before any body is read.
    let rateLimiter: RateLimiter

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let scope = RequestScope.current
        scope?.operationID = operationID
        if OperationAccess.publicOperations.contains(operationID) {
            return try await next(request, body, metadata)
        }
        if OperationAccess.providerSignedOperations.contains(operationID) {
            if let decision = rateLimiter.takeProviderWebhook(from: scope?.clientAddress) {
                guard decision.allowed else { throw Problem.webhookRateLimited(decision) }
                for field in decision.headers { scope?.setResponseHeader(field.name, field.value) }
            }
            return try await next(request, body, metadata)
        }
        let principal = try await authenticate(request, operationID: operationID, from: scope?.clientAddress)
        scope?.principal = principal
        if let decision = rateLimiter.take(keyID: principal.keyID, role: principal.role) {
            guard decision.allowed else { throw Problem.rateLimited(decision, role: principal.role) }
            for field in decision.headers { scope?.setResponseHeader(field.name, field.value) }
        }
        guard let allowed = OperationAccess.roles[operationID], allowed.contains(principal.role) else {
            let names = (OperationAccess.roles[operationID] ?? []).map(\.rawValue).sorted().joined(separator: ", ")
            throw Problem(
                .forbidden,
                status: .forbidden,
                title: "Forbidden",
                detail: "A key of role \(principal.role.rawValue) may not call \(operationID); it takes a key of role \(names.isEmpty ? "(none)" : names)."
            )
        }
        return try await next(request, body, metadata)
    }

    /// Operations a browser's EventSource calls, which cannot send headers: the key may come as
    /// `?access_token=` (RFC 6750 §2.3) there and nowhere else.
    static let queryTokenOperations: Set<String> = ["streamEvents"]

    private func authenticate(_ request: HTTPRequest, operationID: String, from address: String?) async throws -> Principal {
        if request.headerFields[.authorization] == nil, Self.queryTokenOperations.contains(operationID),
           let token = URLComponents(string: request.path ?? "")?.queryItems?.first(where: { $0.name == "access_token" })?.value {
            return try await principal(for: token, from: address)
        }
        guard let header = request.headerFields[.authorization] else {
            throw Self.unauthenticated("This operation needs an API key: send Authorization: Bearer <key>.", keyWasSent: false)
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Self.unauthenticated("The Authorization header must use the Bearer scheme: Authorization: Bearer <key>.", keyWasSent: false)
        }
        return try await principal(for: String(parts[1]), from: address)
    }

    private func principal(for token: String, from address: String?) async throws -> Principal {
        let invalid = Self.unauthenticated("The API key is not valid: unknown, revoked or mistyped.", keyWasSent: true)
        guard let secret = APIKeySecret(token.trimmed) else { throw invalid }
        let hash = secret.hash
        if let known = keys.cache.principal(forHash: hash) { return known }
        if let decision = rateLimiter.reserveKeyLookup(from: address), !decision.allowed { throw Problem.wrongKeysRateLimited(decision) }
        let generation = keys.cache.generation
        let found: Principal?
        do {
            found = try await database.withConnection { try await keys.authenticate(secret, on: $0) }
        } catch {
            rateLimiter.giveBackKeyLookup(from: address)  // the database did not answer: no wrong key
            throw error
        }
        guard let principal = found else { throw invalid }
        rateLimiter.giveBackKeyLookup(from: address)
        keys.cache.remember(principal, forHash: hash, lookedUpAt: generation)
        return principal
    }

    static func unauthenticated(_ detail: String, keyWasSent: Bool) -> Problem {
        // RFC 6750 §3: say which scheme we take, and that the token was bad when one was sent.
        let challenge = keyWasSent ? #"Bearer realm="madoguchi", error="invalid_token""# : #"Bearer realm="madoguchi""#
        return Problem(.unauthenticated, status: .unauthorized, title: "Unauthenticated", detail: detail, headers: [.wwwAuthenticate: challenge])
    }
}
