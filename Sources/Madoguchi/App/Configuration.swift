import Foundation
import Logging

/// Everything an operator can set. Each value comes from a command-line flag, else an environment
/// variable, else the default documented here and in `deploy/madoguchi.env.example`.
public struct Configuration: Sendable {
    /// `MADOGUCHI_HOST`: the address to listen on.
    public var host: String = "127.0.0.1"
    /// `MADOGUCHI_PORT`.
    public var port: Int = 8080
    /// `DATABASE_URL`: an external PostgreSQL. When absent, Madoguchi runs its own cluster under `dataDirectory`.
    public var databaseURL: String? = nil
    /// `MADOGUCHI_REPORTS_DATABASE_URL`: a read replica (a streaming standby of the database) that
    /// the reports read from, so aggregation never competes with ingest and claims on the primary.
    /// When absent, reports read the primary.
    public var reportsDatabaseURL: String? = nil
    /// `MADOGUCHI_DATA_DIR`: where the embedded cluster lives (`pg/`) and listens (`run/`).
    public var dataDirectory: String = "./.madoguchi"
    /// `MADOGUCHI_PG_BIN`: the directory holding `initdb` and `pg_ctl`; searched for when absent.
    public var postgresBinDirectory: String? = nil
    /// `MADOGUCHI_DB_POOL_SIZE`: the most connections the service opens to PostgreSQL.
    public var databasePoolSize: Int = 20
    /// `MADOGUCHI_DB_WAIT_SECONDS`: how long a request waits for a database connection before it is
    /// answered `503` with `Retry-After` (PostgreSQL down, unreachable, or every connection busy).
    public var databaseWait: Duration = .seconds(5)
    /// `MADOGUCHI_DB_START_WAIT_SECONDS`: how long `serve`, `migrate` and `keys` wait at start for PostgreSQL to
    /// accept a first connection before they stop with an error naming the database (a wrong host,
    /// password or `sslmode` would otherwise be a silent hang). Longer where PostgreSQL starts
    /// alongside the service or a loaded machine answers slowly.
    public var databaseStartWait: Duration = .seconds(10)
    /// `MADOGUCHI_REPORT_CONCURRENCY`: the most report statements (JSON or CSV) running at once, so that
    /// dashboards never take the connections ingest, claims and replies need; a quarter of
    /// `MADOGUCHI_DB_POOL_SIZE` (at least one) when unset. A report finding them all busy waits up to
    /// `MADOGUCHI_DB_WAIT_SECONDS`, then is `503` (`reports-busy`).
    public var reportConcurrency: Int? = nil
    /// `MADOGUCHI_REPORT_TIMEOUT_SECONDS`: how long one JSON report's statement may run before
    /// PostgreSQL stops it (`503`, `report-timeout`). A CSV export has no such limit: it streams as
    /// fast as its client reads.
    public var reportTimeout: Duration = .seconds(60)
    /// `MADOGUCHI_MAX_BODY_BYTES`: the largest JSON request body accepted; larger ones get 413 unread.
    public var maxBodyBytes: Int = 1 << 20
    /// `MADOGUCHI_MAX_EMAIL_BYTES`: the largest raw mail accepted by the email gateway.
    public var maxEmailBytes: Int = 25 * 1_000_000
    /// `MADOGUCHI_CLAIM_LEASE_SECONDS`: how long a claim lasts unless renewed.
    public var claimLease: Duration = .seconds(15 * 60)
    /// `MADOGUCHI_WARNING_WORDS`: comma-separated words a reply may never contain (e.g. 要確認,TODO);
    /// a send containing one is refused like a leftover placeholder.
    public var warningWords: [String] = []
    /// `MADOGUCHI_SUBJECT_THREAD_HOURS`: how long after a customer's last message a mail with no thread
    /// headers (carrier mail drops them) still joins the open ticket with the same subject.
    public var subjectThreadWindow: Duration = .seconds(7 * 24 * 3600)
    /// `MADOGUCHI_CHAT_IDLE_MINUTES`: a chat conversation quiet for longer than this starts a new ticket.
    public var chatIdleGap: Duration = .seconds(30 * 60)
    /// `MADOGUCHI_SMS_PART_WAIT_MINUTES`: how long the parts of a long text wait for a missing one before
    /// they become a message with the gap marked.
    public var smsPartWait: Duration = .seconds(10 * 60)
    /// `MADOGUCHI_REJECTED_PAYLOAD_DAYS`: how long a refused provider webhook (a signature that did not
    /// verify) is kept for the record before it is removed.
    public var rejectedPayloadDays = 30
    /// Secrets that verify provider webhooks (Twilio, Vonage, LINE) and the public URL they call.
    public var providers = ProviderSettings()
    /// How replies leave: SMTP relay, sender address, SMS and LINE sending, the outbox worker.
    public var delivery = DeliverySettings()
    /// Webhook delivery and event retention.
    public var webhooks = WebhookSettings()
    /// How long and how many connections and request bodies the HTTP server holds.
    public var http = HTTPSettings()
    /// `MADOGUCHI_LOG_LEVEL`: trace, debug, info, notice, warning, error, critical.
    public var logLevel: Logger.Level = .info
    /// `MADOGUCHI_LOG_FORMAT`: `text` for a terminal, `json` (one object per line) for journald and log shippers.
    public var logFormat: LogFormat = .text

    public enum LogFormat: String, Sendable, CaseIterable {
        case text, json
    }

    public init() {}

    /// The defaults overridden by whichever `MADOGUCHI_*` and `DATABASE_URL` variables are set.
    /// A malformed value is an error naming the variable rather than a silent fallback.
    public static func fromEnvironment(_ environment: [String: String]) throws -> Configuration {
        var configuration = Configuration()
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? { try SettingReader(value: value).integer(name, in: range) }
        if let host = value("MADOGUCHI_HOST") { configuration.host = host }
        if let port = try integer("MADOGUCHI_PORT", in: 1...65535) { configuration.port = port }
        configuration.databaseURL = value("DATABASE_URL")
        configuration.reportsDatabaseURL = value("MADOGUCHI_REPORTS_DATABASE_URL")
        // Refused at start if malformed, naming this variable, not DATABASE_URL.
        if let url = configuration.reportsDatabaseURL { _ = try DatabaseURL.configuration(from: url, variable: "MADOGUCHI_REPORTS_DATABASE_URL") }
        if let directory = value("MADOGUCHI_DATA_DIR") { configuration.dataDirectory = directory }
        configuration.postgresBinDirectory = value("MADOGUCHI_PG_BIN")
        // At least 4: following the event feed holds one connection for its LISTEN while anyone waits
        // for events (the assignment and webhook workers always do), and requests need the others.
        if let size = try integer("MADOGUCHI_DB_POOL_SIZE", in: 4...1000) { configuration.databasePoolSize = size }
        if let seconds = try integer("MADOGUCHI_DB_WAIT_SECONDS", in: 1...600) { configuration.databaseWait = .seconds(seconds) }
        if let seconds = try integer("MADOGUCHI_DB_START_WAIT_SECONDS", in: 1...3600) { configuration.databaseStartWait = .seconds(seconds) }
        if let slots = try integer("MADOGUCHI_REPORT_CONCURRENCY", in: 1...1000) {
            // Reports are given a share of the pool so that they never take every connection ingest,
            // claims and replies need; on a replica's pool of their own they may have all of it.
            guard slots < configuration.databasePoolSize || configuration.reportsDatabaseURL != nil else {
                throw ConfigurationError("MADOGUCHI_REPORT_CONCURRENCY=\(slots) must be below MADOGUCHI_DB_POOL_SIZE (\(configuration.databasePoolSize)): reports would take every connection")
            }
            configuration.reportConcurrency = slots
        }
        if let seconds = try integer("MADOGUCHI_REPORT_TIMEOUT_SECONDS", in: 1...86_400) { configuration.reportTimeout = .seconds(seconds) }
        if let bytes = try integer("MADOGUCHI_MAX_BODY_BYTES", in: 1024...(1 << 30)) { configuration.maxBodyBytes = bytes }
        if let bytes = try integer("MADOGUCHI_MAX_EMAIL_BYTES", in: 1024...(1 << 30)) { configuration.maxEmailBytes = bytes }
        if let seconds = try integer("MADOGUCHI_CLAIM_LEASE_SECONDS", in: 10...86_400) { configuration.claimLease = .seconds(seconds) }
        if let hours = try integer("MADOGUCHI_SUBJECT_THREAD_HOURS", in: 0...(24 * 365)) {
            configuration.subjectThreadWindow = .seconds(hours * 3600)
        }
        if let minutes = try integer("MADOGUCHI_CHAT_IDLE_MINUTES", in: 1...(60 * 24 * 30)) {
            configuration.chatIdleGap = .seconds(minutes * 60)
        }
        if let words = value("MADOGUCHI_WARNING_WORDS") {
            configuration.warningWords = words.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let minutes = try integer("MADOGUCHI_SMS_PART_WAIT_MINUTES", in: 1...(60 * 24)) {
            configuration.smsPartWait = .seconds(minutes * 60)
        }
        if let days = try integer("MADOGUCHI_REJECTED_PAYLOAD_DAYS", in: 1...36_500) { configuration.rejectedPayloadDays = days }
        configuration.providers = try ProviderSettings.fromEnvironment(value)
        configuration.delivery = try DeliverySettings.fromEnvironment(value, providers: configuration.providers)
        configuration.webhooks = try WebhookSettings.fromEnvironment(value)
        configuration.http = try HTTPSettings.fromEnvironment(SettingReader(value: value), maxBodyBytes: max(configuration.maxBodyBytes, configuration.maxEmailBytes))
        if let level = value("MADOGUCHI_LOG_LEVEL") { configuration.logLevel = try parseLogLevel(level) }
        if let format = value("MADOGUCHI_LOG_FORMAT") {
            guard let parsed = LogFormat(rawValue: format.lowercased()) else {
                throw ConfigurationError("MADOGUCHI_LOG_FORMAT=\(format) is not one of text, json")
            }
            configuration.logFormat = parsed
        }
        return configuration
    }

    public static func parseLogLevel(_ text: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError("log level \(text) is not one of \(names)")
        }
        return level
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
