/// What one client may hold of the HTTP server: time, connections and memory. The defaults keep an
/// idle, slow or abandoned client from holding a connection for long, and bound the bodies buffered at
/// once, without troubling real callers (a 25 MB mail over a slow uplink, a long-poll, an event stream).
public struct HTTPSettings: Sendable {
    /// `MADOGUCHI_HTTP_IDLE_SECONDS`: a connection on which nothing complete arrives for this long is
    /// closed: headers sent a byte at a time, a stalled body, an idle keep-alive connection. A response
    /// being written (a long-poll, an event stream) is not idle.
    public var idleTimeout: Duration = .seconds(30)
    /// `MADOGUCHI_HTTP_REQUEST_SECONDS`: the longest a request's body may take to arrive in full after
    /// its head, however steadily it trickles.
    public var requestTimeout: Duration = .seconds(300)
    /// `MADOGUCHI_HTTP_KEYLESS_REQUEST_SECONDS`: the same for a request without an `Authorization`
    /// header (the provider webhooks), which anyone can send: kept short so that slow bodies cannot
    /// hold the connections for long.
    public var keylessRequestTimeout: Duration = .seconds(30)
    /// `MADOGUCHI_HTTP_WRITE_SECONDS`: the longest a client may leave our response unread (its socket
    /// full) before the connection is dropped.
    public var writeTimeout: Duration = .seconds(30)
    /// `MADOGUCHI_HTTP_MAX_CONNECTIONS`: open connections; further ones wait in the listen backlog
    /// until one closes. Keep it under the process's file descriptor limit.
    public var maxConnections = 4096
    /// `MADOGUCHI_HTTP_BODY_BUDGET_BYTES`: request bytes held in memory at once, counted by each
    /// request's declared length (a chunked body by its path's limit). A request that would exceed it is
    /// answered `503` with `Retry-After` before its body is read.
    public var bodyBudgetBytes = 256 * 1_000_000
    /// How long `/health/ready` may take to reach the database before answering 503: a load
    /// balancer's probe gets an answer, never a hang.
    public var readinessTimeout: Duration = .seconds(1)
    /// `MADOGUCHI_RATE_LIMIT_<ROLE>` (`GATEWAY`, `AGENT`, …): `rate/burst` per key, e.g. `20/200`, or
    /// `off`. Over it, a request is `429` with `Retry-After` and `RateLimit-*` headers.
    public var rateLimits: [Role: RateLimit] = [
        .gateway: RateLimit(perSecond: 100, burst: 2000),
        .agent: RateLimit(perSecond: 20, burst: 200),
        .supervisor: RateLimit(perSecond: 20, burst: 200),
        .dashboard: RateLimit(perSecond: 20, burst: 200),
        .orderSystem: RateLimit(perSecond: 50, burst: 500),
        .admin: RateLimit(perSecond: 10, burst: 100),
    ]
    /// `MADOGUCHI_RATE_LIMIT_PROVIDER`: `rate/burst` per client address on the provider webhooks
    /// (`/v1/inbound/{sms|chat}/{provider}`, which carry no key), or `off`.
    public var providerRateLimit: RateLimit? = RateLimit(perSecond: 100, burst: 2000)
    /// `MADOGUCHI_RATE_LIMIT_WRONG_KEYS`: `rate/burst` of unknown or revoked keys per client address,
    /// or `off`. Over it, keys not recently found valid are `429` without a database lookup.
    public var wrongKeyRateLimit: RateLimit? = RateLimit(perSecond: 10, burst: 100)
    /// `MADOGUCHI_TRUSTED_PROXIES`: the reverse proxies (addresses or ranges, comma-separated) whose
    /// `X-Forwarded-For` names the client for the limits kept per client address; none by default.
    var trustedProxies = TrustedProxies.none
    /// `MADOGUCHI_CORS_ORIGINS`: the web origins whose pages may call the API from a browser
    /// (`CORSOrigins`); none by default.
    public var corsOrigins = CORSOrigins.none

    public init() {}

    static func fromEnvironment(_ reader: SettingReader, maxBodyBytes: Int) throws -> HTTPSettings {
        var settings = HTTPSettings()
        if let idle = try reader.seconds("MADOGUCHI_HTTP_IDLE_SECONDS", in: 1...3600) { settings.idleTimeout = idle }
        if let request = try reader.seconds("MADOGUCHI_HTTP_REQUEST_SECONDS", in: 1...86_400) { settings.requestTimeout = request }
        if let keyless = try reader.seconds("MADOGUCHI_HTTP_KEYLESS_REQUEST_SECONDS", in: 1...86_400) { settings.keylessRequestTimeout = keyless }
        if let write = try reader.seconds("MADOGUCHI_HTTP_WRITE_SECONDS", in: 1...3600) { settings.writeTimeout = write }
        /// `rate/burst` or `off` from `name`; `current` when it is not set.
        func rateLimit(_ name: String, example: String, current: RateLimit?) throws -> RateLimit? {
            guard let raw = reader.value(name) else { return current }
            if raw.lowercased() == "off" { return nil }
            guard let limit = RateLimit(raw) else { throw ConfigurationError("\(name)=\(raw) is not rate/burst (like \(example)) or off") }
            return limit
        }
        for role in Role.allCases {
            settings.rateLimits[role] = try rateLimit("MADOGUCHI_RATE_LIMIT_" + role.rawValue.uppercased(), example: "20/200",
                                                      current: settings.rateLimits[role])
        }
        settings.providerRateLimit = try rateLimit("MADOGUCHI_RATE_LIMIT_PROVIDER", example: "100/2000", current: settings.providerRateLimit)
        settings.wrongKeyRateLimit = try rateLimit("MADOGUCHI_RATE_LIMIT_WRONG_KEYS", example: "10/100", current: settings.wrongKeyRateLimit)
        if let proxies = reader.value("MADOGUCHI_TRUSTED_PROXIES") { settings.trustedProxies = try TrustedProxies(proxies) }
        if let origins = reader.value("MADOGUCHI_CORS_ORIGINS") { settings.corsOrigins = try CORSOrigins(origins) }
        if let connections = try reader.integer("MADOGUCHI_HTTP_MAX_CONNECTIONS", in: 1...1_000_000) { settings.maxConnections = connections }
        if let budget = try reader.integer("MADOGUCHI_HTTP_BODY_BUDGET_BYTES", in: 1024...(1 << 40)) {
            // One request of the largest size allowed must always fit, or it could never be taken in.
            guard budget >= maxBodyBytes else {
                throw ConfigurationError("MADOGUCHI_HTTP_BODY_BUDGET_BYTES=\(budget) is below the largest body allowed (\(maxBodyBytes) bytes)")
            }
            settings.bodyBudgetBytes = budget
        }
        return settings
    }
}
