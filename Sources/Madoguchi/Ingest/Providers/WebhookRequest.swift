import Crypto
import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime
import Synchronization

/// A provider's webhook request as it arrived — the bytes and headers its signature covers — and the
/// two ways such a request ends before it is read: refused, or unreadable. Both keep the request.
struct WebhookRequest: Sendable {
    var channel: Channel
    var provider: String
    var body: [UInt8]
    var headers: HTTPFields
    /// Path and query as requested.
    var uri: String
    /// The host the client called.
    var authority: String?

    var contentType: String? { headers[.contentType] }

    var isForm: Bool { contentType?.lowercased().hasPrefix("application/x-www-form-urlencoded") ?? false }

    /// The caller asked for JSON by name (providers send `*/*` or nothing).
    var asksForJSON: Bool { headers[.accept]?.lowercased().contains("application/json") ?? false }

    /// The request being handled, its body read in full — unless `refusal` says, from the headers
    /// alone, that it cannot be verified: then it is answered 403 before a byte of the body is read
    /// (and nothing is stored; the log says why). `BodyLimitMiddleware` has already capped the body.
    static func receive(_ body: HTTPBody, channel: Channel, provider: String, refusedBeforeBody refusal: String?,
                        logger: Logger) async throws -> WebhookRequest {
        guard let scope = RequestScope.current else { throw Problem.internalError }
        if let refusal {
            logger.warning("provider webhook refused before its body was read", metadata: ["provider": "\(provider)", "reason": "\(refusal)"])
            throw Problem.signatureInvalid(refusal)
        }
        let bytes = try await [UInt8](collecting: body, upTo: .max)
        return WebhookRequest(channel: channel, provider: provider, body: bytes, headers: scope.requestHeaders, uri: scope.requestURI,
                              authority: scope.requestAuthority)
    }

    /// The URLs the provider may have signed. Behind a proxy we cannot see the scheme and host it
    /// called, so `MADOGUCHI_PUBLIC_URL` says; without it, the host the request names (the first
    /// proxy's `X-Forwarded-Host`, else `Host`) with https, then http. Each with and without an
    /// explicit default port, which providers write either way.
    ///
    /// Without the setting, the host is the caller's to name: a request Twilio signed for another
    /// deployment sharing the auth token (staging) verifies here too. The RUNBOOK says to set it.
    func signedURLCandidates(publicURL: String?) -> [String] {
        var bases: [String] = []
        if let publicURL {
            bases = [publicURL]
        } else if let host = Self.firstForwardedHost(headers[HTTPField.Name("X-Forwarded-Host")!]) ?? authority {
            bases = ["https://\(host)", "http://\(host)"]
        }
        var candidates: [String] = []
        for base in bases {
            candidates.append(base + uri)
            guard var parts = URLComponents(string: base), let scheme = parts.scheme?.lowercased() else { continue }
            let defaultPort = scheme == "https" ? 443 : 80
            if parts.port == nil { parts.port = defaultPort } else if parts.port == defaultPort { parts.port = nil }
            if let toggled = parts.string { candidates.append(toggled + uri) }
        }
        // Once each (a refusal lists them, and a public URL with its port spelled out toggles back to itself).
        var seen = Set<String>()
        return candidates.filter { seen.insert($0).inserted }
    }

    /// The host the client called, from `X-Forwarded-Host`: each proxy on the way appends its own,
    /// so the first is the one the provider named ("support.example.jp, internal-lb:8080").
    static func firstForwardedHost(_ value: String?) -> String? {
        guard let first = value?.split(separator: ",", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces), !first.isEmpty else { return nil }
        return first
    }

    /// Keeps the request as `rejected` and answers 403 with `reason`: a request whose signature does
    /// not verify writes nothing else. Of its body only the first `rejectedBodyKept` bytes are kept,
    /// with its length and digest: anyone can send these without a key, and kept whole (a megabyte
    /// each, a hundred a second from every address) they would fill the database's disk.
    func refuse(_ reason: String, database: Database, logger: Logger) async throws -> Never {
        // Past the budget, a refusal is logged (once a minute) but not kept: a flood from many
        // addresses would otherwise still grow the table without bound.
        let keep = RejectedPayloadBudget.shared.mayKeep()
        // Asked on every refusal, kept or not: drops carried over a window's end are reported too.
        if let dropped = RejectedPayloadBudget.shared.droppedToReport() {
            logger.warning("provider webhooks refused and not kept: over the budget of rejected payloads",
                           metadata: ["provider": "\(provider)", "not_kept": "\(dropped)", "budget": "\(RejectedPayloadBudget.perWindow) per 10 minutes"])
        }
        guard keep else { throw Problem.signatureInvalid(reason) }
        let kept = Array(body.prefix(Self.rejectedBodyKept))
        let noted = kept.count == body.count ? reason
            : reason + " (the first \(kept.count) of \(body.count) bytes are kept; SHA-256 of all: "
                + SHA256.hash(data: body).lowercaseHex + ")"
        let id = try await database.withConnection { connection in
            try await InboundPayloadStore(logger: logger).keepUnused(
                channel: channel, provider: provider, body: kept, contentType: contentType, rejected: true, reason: noted, on: connection)
        }
        logger.warning("provider webhook refused", metadata: ["provider": "\(provider)", "inbound_id": "\(id)", "reason": "\(reason)"])
        throw Problem.signatureInvalid(reason)
    }

    /// How much of an unsigned or wrongly signed request's body is kept: enough to see what it was.
    static let rejectedBodyKept = 4096

    /// Keeps a verified request that cannot be taken in as `failed` (`GET /v1/inbound/{id}` shows it)
    /// and ends its handling with `Failed`, which the endpoint answers `200` with `problem`'s detail:
    /// a signed request is the provider's own, and no retry can mend it. Answered with an error
    /// status, Vonage and LINE would redeliver it, each copy kept again.
    func fail(_ problem: Problem, database: Database, logger: Logger) async throws -> Never {
        let id = try await database.withConnection { connection in
            try await InboundPayloadStore(logger: logger).keepUnused(
                channel: channel, provider: provider, body: body, contentType: contentType, rejected: false, reason: problem.detail, on: connection)
        }
        logger.warning("provider webhook kept as failed", metadata: ["provider": "\(provider)", "inbound_id": "\(id)", "reason": "\(problem.detail)"])
        throw Failed(answer: ProviderWebhookAnswer(
            inboundID: id, provider: provider, events: [.init(type: "request", result: .failed, detail: problem.detail)]))
    }

    /// A verified request kept as `failed`, and the answer that says so.
    struct Failed: Error {
        let answer: ProviderWebhookAnswer
    }
}

extension Problem {
    static func signatureInvalid(_ reason: String) -> Problem {
        Problem(.signatureInvalid, status: .forbidden, title: "Signature not verified", detail: reason)
    }

    static func unknownProvider(_ provider: String, channel: String, known: [String]) -> Problem {
        Problem(.unknownProvider, status: .notFound, title: "Unknown provider",
                detail: "'\(provider)' is not a \(channel) provider this service reads; it takes \(known.joined(separator: ", ")). A gateway of your own can post to the provider-neutral endpoint instead.")
    }
}

/// How many refused webhook requests a process keeps: `perWindow` every ten minutes (at 4 KiB each,
/// at most about 2 MB), so that a flood of made-up signatures from many addresses cannot grow
/// `inbound_payloads` without bound. One budget for the process, across providers.
final class RejectedPayloadBudget: Sendable {
    static let shared = RejectedPayloadBudget()
    static let perWindow = 500
    static let window = Duration.seconds(600)

    private struct State {
        var windowStart = ContinuousClock.now
        var kept = 0
        var dropped = 0
        var lastReport = ContinuousClock.now - .seconds(60)
    }
    private let state = Mutex(State())

    /// Whether one more refused request may be kept; counts it either way.
    func mayKeep(now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            // A new window's allowance; drops not yet reported carry over, so the log counts them all.
            if now - state.windowStart >= Self.window { state = State(windowStart: now, dropped: state.dropped, lastReport: state.lastReport) }
            guard state.kept < Self.perWindow else {
                state.dropped += 1
                return false
            }
            state.kept += 1
            return true
        }
    }

    /// How many were not kept since the last report, at most once a minute.
    func droppedToReport(now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            guard state.dropped > 0, now - state.lastReport >= .seconds(60) else { return nil }
            defer { state.dropped = 0; state.lastReport = now }
            return state.dropped
        }
    }
}
