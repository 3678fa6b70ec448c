import Foundation
import HTTPTypes
import Synchronization

/// A request rate and a burst: a token bucket that refills `perSecond` tokens a second up to `burst`.
public struct RateLimit: Sendable, Equatable {
    public var perSecond: Double
    public var burst: Int

    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// `"20/200"`: 20 a second, bursts of 200. The rate is at least one every 1,000 seconds: the time a
    /// bucket takes to refill is kept in milliseconds, and a rate of almost nothing made that number
    /// overflow (the process stopped at its first request).
    init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let rate = Double(parts[0]), rate >= 0.001, rate <= 1_000_000, let burst = Int(parts[1]), (1...10_000_000).contains(burst)
        else { return nil }
        self.init(perSecond: rate, burst: burst)
    }
}

/// Per-key request limits, by role; for the provider webhooks (which carry no key) per client
/// address; and wrong keys per client address (`wrongKeyLimit`). Each key or address has its own bucket in this process (two instances each allow the
/// rate). A gateway's burst is large, so a relay catching up after an outage is slowed — told when to
/// come back — rather than refused.
///
/// A bucket that has refilled is the same as none, so buckets are dropped once full: without that, the
/// provider webhooks (no key, a bucket per client address, made before any signature is checked) grew
/// one bucket for every address that ever called, for as long as the process ran.
final class RateLimiter: Sendable {
    private let limits: [Role: RateLimit]
    let providerLimit: RateLimit?
    /// Wrong keys one client address may send. Each costs a database lookup and a pooled connection
    /// (only valid keys are cached), so without it a stream of made-up keys took the connections
    /// ingest and agents need. Once an address has used its allowance, keys not already cached as
    /// valid are refused unread until a token trickles back; cached ones still pass.
    let wrongKeyLimit: RateLimit?
    private let state = Mutex(State())

    private struct State {
        var buckets: [String: Bucket] = [:]
        var lastSweep: ContinuousClock.Instant?
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        /// From then on it is full again: as good as no bucket.
        var fullAt: ContinuousClock.Instant
    }

    /// Buckets kept before the full ones are swept out (at most once a second).
    static let sweepAbove = 10_000

    /// How many buckets are kept now (for tests).
    var bucketCount: Int { state.withLock { $0.buckets.count } }

    /// What one request got: allowed or not, and the `RateLimit-*` headers that say so.
    struct Decision {
        var allowed: Bool
        var headers: HTTPFields
        /// Whole seconds until a request would be allowed (0 when allowed).
        var retryAfter: Int
    }

    init(limits: [Role: RateLimit], providerLimit: RateLimit? = nil, wrongKeyLimit: RateLimit? = nil) {
        self.limits = limits
        self.providerLimit = providerLimit
        self.wrongKeyLimit = wrongKeyLimit
    }

    /// Takes one token from the key's bucket, or says how long to wait; nil when the role is unlimited.
    func take(keyID: UUID, role: Role, now: ContinuousClock.Instant = .now) -> Decision? {
        limits[role].map { take(bucket: "key " + keyID.uuidString, limit: $0, now: now) }
    }

    /// Takes one token from the bucket of a client address calling the provider webhooks; nil when
    /// they are unlimited. The address, not the provider, so one noisy client cannot use up the
    /// provider's own allowance.
    func takeProviderWebhook(from address: String?, now: ContinuousClock.Instant = .now) -> Decision? {
        providerLimit.map { take(bucket: "webhook " + Self.client(address), limit: $0, now: now) }
    }

    /// Whether a key from this address may be looked up: refused while the address has no wrong-key
    /// token left. A lookup takes its token before it starts, and `giveBackKeyLookup(from:)` returns it
    /// when the key was valid: taken only once a key had proved wrong, any number of lookups in flight at
    /// once all passed on the one token left and together cost one. Nil when unlimited.
    func reserveKeyLookup(from address: String?, now: ContinuousClock.Instant = .now) -> Decision? {
        wrongKeyLimit.map { take(bucket: Self.wrongKeyBucket(address), limit: $0, now: now) }
    }

    /// The key `reserveKeyLookup(from:)` was taken for was valid (or could not be looked up): its
    /// token goes back.
    func giveBackKeyLookup(from address: String?) {
        guard let limit = wrongKeyLimit else { return }
        let name = Self.wrongKeyBucket(address)
        state.withLock { state in
            // A bucket swept meanwhile was full: nothing to give back.
            guard var bucket = state.buckets[name] else { return }
            bucket.tokens = min(Double(limit.burst), bucket.tokens + 1)
            state.buckets[name] = bucket
        }
    }

    private static func wrongKeyBucket(_ address: String?) -> String { "wrong keys " + client(address) }

    /// Whose bucket a client address counts in: an IPv4 address alone, an IPv6 address by its /64.
    /// One IPv6 host usually holds a whole /64 and can send from a new address every request, each
    /// with a fresh allowance; a /64 is the smallest block a provider hands out.
    static func client(_ address: String?) -> String {
        guard let address else { return "-" }
        guard address.contains(":"), let bytes = TrustedProxies.bytes(of: address) else { return address }
        // An IPv4 address written as IPv6 (::ffff:192.0.2.1) is that IPv4 address (`bytes` reads it so).
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return bytes[0..<8].map { String(format: "%02x", $0) }.joined() + "::/64"
    }

    private func take(bucket name: String, limit: RateLimit, now: ContinuousClock.Instant) -> Decision {
        state.withLock { state in
            var bucket = state.buckets[name] ?? Bucket(tokens: Double(limit.burst), updated: now, fullAt: now)
            let elapsed = bucket.updated.duration(to: now).seconds
            bucket.tokens = min(Double(limit.burst), bucket.tokens + max(0, elapsed) * limit.perSecond)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            let secondsUntilFull = (Double(limit.burst) - bucket.tokens) / limit.perSecond
            bucket.fullAt = now + .milliseconds(Int64((secondsUntilFull * 1000).rounded(.up)))
            state.buckets[name] = bucket
            if state.buckets.count > Self.sweepAbove, state.lastSweep.map({ $0.duration(to: now) >= .seconds(1) }) ?? true {
                state.lastSweep = now
                state.buckets = state.buckets.filter { $0.value.fullAt > now }
            }
            let untilFull = Int(secondsUntilFull.rounded(.up))
            var headers: HTTPFields = [:]
            headers[.rateLimitLimit] = String(limit.burst)
            headers[.rateLimitRemaining] = String(Int(bucket.tokens))
            headers[.rateLimitReset] = String(untilFull)
            let retryAfter = allowed ? 0 : max(1, Int(((1 - bucket.tokens) / limit.perSecond).rounded(.up)))
            return Decision(allowed: allowed, headers: headers, retryAfter: retryAfter)
        }
    }
}

extension HTTPField.Name {
    static let rateLimitLimit = Self("RateLimit-Limit")!
    static let rateLimitRemaining = Self("RateLimit-Remaining")!
    static let rateLimitReset = Self("RateLimit-Reset")!
}

extension Problem.Kind {
    public static let rateLimited = Self(rawValue: "rate-limited")
}

extension Problem {
    static func rateLimited(_ decision: RateLimiter.Decision, role: Role) -> Problem {
        rateLimited(decision, "This key has used its requests for now", burstOf: "\(role.rawValue) keys: ")
    }

    static func webhookRateLimited(_ decision: RateLimiter.Decision) -> Problem {
        rateLimited(decision, "This address has used its provider webhook requests for now", burstOf: "")
    }

    static func wrongKeysRateLimited(_ decision: RateLimiter.Decision) -> Problem {
        rateLimited(decision, "This address has sent too many wrong API keys; keys are not looked up for it for now", burstOf: "")
    }

    private static func rateLimited(_ decision: RateLimiter.Decision, _ sentence: String, burstOf whose: String) -> Problem {
        var headers = decision.headers
        headers[.retryAfter] = String(decision.retryAfter)
        return Problem(.rateLimited, status: .tooManyRequests, title: "Too many requests",
                       detail: "\(sentence) (\(whose)bursts of \(decision.headers[.rateLimitLimit] ?? "?")); try again in \(decision.retryAfter) s.",
                       headers: headers)
    }
}
