import Foundation

/// How webhooks are delivered, and how long the event log is kept.
public struct WebhookSettings: Sendable {
    /// `MADOGUCHI_WEBHOOK_WORKER`: `off` leaves webhook delivery to `madoguchi worker` processes.
    public var runsInServe = true
    /// `MADOGUCHI_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`: let webhooks reach private, loopback and link-local
    /// addresses (an intranet dashboard). Off by default: a webhook is a request this server makes
    /// wherever an admin points it.
    public var allowPrivateAddresses = false
    /// `MADOGUCHI_WEBHOOK_TIMEOUT_SECONDS`: a receiver that has not answered by then failed.
    public var timeout: Duration = .seconds(10)
    /// `MADOGUCHI_WEBHOOK_DISABLE_AFTER`: failures in a row after which an endpoint is disabled.
    public var disableAfter = 20
    /// `MADOGUCHI_WEBHOOK_RETRY_SECONDS`, `MADOGUCHI_WEBHOOK_RETRY_CAP_SECONDS`: the first retry's
    /// delay, doubling to the cap, less up to half at random.
    public var retryBase: Duration = .seconds(5)
    public var retryCap: Duration = .seconds(3600)
    /// Endpoints one worker serves at once (each endpoint's events go one at a time, in order).
    public var concurrency = 8
    /// How long a worker holds an endpoint for a turn: five minutes, and always room for a few
    /// requests that each take the whole timeout twice, looking the receiver up and then talking to
    /// it (a turn ends before it would outlast the lease).
    public var lease: Duration { max(.seconds(300), timeout * 8 + .seconds(60)) }
    public var pollInterval: Duration = .seconds(1)
    /// `MADOGUCHI_EVENT_RETENTION_DAYS`: events older than this are removed (never ones an active
    /// webhook has yet to receive); unset keeps them all.
    public var retentionDays: Int?

    /// How a webhook's host name becomes the address to connect to (tests put a name server that
    /// does not answer in its place).
    var lookUp: WebhookResolver.LookUp = { address, allowPrivate in try address.resolve(allowPrivate: allowPrivate) }

    public init() {}

    static func fromEnvironment(_ value: @escaping (String) -> String?) throws -> WebhookSettings {
        var settings = WebhookSettings()
        let reader = SettingReader(value: value)
        func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? { try reader.integer(name, in: range) }
        func flag(_ name: String) throws -> Bool? { try reader.flag(name) }
        if let on = try flag("MADOGUCHI_WEBHOOK_WORKER") { settings.runsInServe = on }
        if let allow = try flag("MADOGUCHI_WEBHOOK_ALLOW_PRIVATE_ADDRESSES") { settings.allowPrivateAddresses = allow }
        if let seconds = try integer("MADOGUCHI_WEBHOOK_TIMEOUT_SECONDS", in: 1...300) { settings.timeout = .seconds(seconds) }
        if let count = try integer("MADOGUCHI_WEBHOOK_DISABLE_AFTER", in: 1...10_000) { settings.disableAfter = count }
        if let seconds = try integer("MADOGUCHI_WEBHOOK_RETRY_SECONDS", in: 0...86_400) { settings.retryBase = .seconds(seconds) }
        if let seconds = try integer("MADOGUCHI_WEBHOOK_RETRY_CAP_SECONDS", in: 0...(7 * 86_400)) { settings.retryCap = .seconds(seconds) }
        try SettingReader.checkRetryCap(settings.retryCap, "MADOGUCHI_WEBHOOK_RETRY_CAP_SECONDS", atLeast: settings.retryBase, "MADOGUCHI_WEBHOOK_RETRY_SECONDS")
        settings.retentionDays = try integer("MADOGUCHI_EVENT_RETENTION_DAYS", in: 1...36_500)
        return settings
    }

    func backoff(afterFailures streak: Int) -> Duration {
        let base = retryBase.seconds * pow(2, Double(max(0, streak - 1)))
        return .milliseconds(Int64(min(base, retryCap.seconds) * Double.random(in: 0.5...1.0) * 1000))
    }
}
