import Foundation
import MadoguchiMail

/// How replies leave: the relay and sender address for mail, the providers' sending credentials for
/// SMS and LINE, and how the outbox worker paces itself. A channel with nothing configured keeps its
/// replies waiting in the outbox (`/health/ready` says so) rather than failing them.
public struct DeliverySettings: Sendable {
    /// `MADOGUCHI_SMTP_URL` (with `MADOGUCHI_SMTP_CA_FILE`, `MADOGUCHI_SMTP_HELO`).
    public var smtp: SMTPRelay?
    /// `MADOGUCHI_MAIL_FROM`: the support address replies come from (`Shop <support@shop.example>`);
    /// their Reply-To is its `+t1234` form, which threads the customer's answer to the ticket.
    public var mailFrom: MailAddress?
    /// `MADOGUCHI_FORM_MAIL_FROM`: the addresses web forms on the shop's site mail inquiries from
    /// (Contact Form 7's `wordpress@shop.example`), the customer in Reply-To. Their mail, and the
    /// support address's own, is filed under the Reply-To (`FormRelay`).
    public var formMailFrom: [String] = []
    /// Carrier domains that get ISO-2022-JP: the built-in list plus `MADOGUCHI_CARRIER_DOMAINS`.
    public var carrierDomains: Set<String> = MailComposer.carrierDomains
    /// `MADOGUCHI_DKIM_KEY_FILE` (PEM RSA key) and `MADOGUCHI_DKIM_SELECTOR`; signs for the From domain.
    public var dkim: DKIMKey?
    public var smtpTimeouts = SMTPTimeouts()
    /// How long a provider's sending API may take to answer before the request counts as unanswered.
    public var providerTimeout: Duration = .seconds(30)

    public var twilio: TwilioSending?
    public var vonage: VonageSending?
    public var line: LineSending?
    /// `MADOGUCHI_CHAT_GATEWAY_URL` and `MADOGUCHI_CHAT_GATEWAY_SECRET`: where replies to chat
    /// identities other than LINE's go (those a gateway pushed in through `POST /v1/inbound/chat`).
    public var chatGateway: ChatGatewaySending?

    /// `MADOGUCHI_AUTO_REPLY_TEMPLATE`: the name (or id) of the template a new mail ticket is
    /// acknowledged with (受付確認メール); unset, no automatic replies.
    public var autoReplyTemplate: String?
    /// `MADOGUCHI_AUTO_REPLY_DAILY_CAP`: automatic replies one address gets in 24 hours at most.
    public var autoReplyDailyCap = 3

    /// `MADOGUCHI_OUTBOX_WORKER`: `on` (default) runs the delivery worker inside `madoguchi serve`;
    /// `off` leaves it to `madoguchi worker` processes.
    public var runsInServe = true
    /// `MADOGUCHI_OUTBOX_CONCURRENCY`: deliveries a worker runs at once, each on its own SMTP
    /// connection. Deliveries in flight together share their commits, so more of them cost the
    /// database less per reply (`bench outbound`: 4 → 16 made a worker about three times as fast);
    /// 16 stays well inside what relays accept from one client (Postfix allows 50 by default).
    public var concurrency = 16
    /// `MADOGUCHI_OUTBOX_LEASE_SECONDS`: how long a claimed row is a worker's before another may take
    /// it over. Longer than the slowest attempt can take.
    public var lease: Duration = .seconds(600)
    /// `MADOGUCHI_OUTBOX_MAX_ATTEMPTS`: attempts before a delivery that keeps failing for now fails for good.
    public var maxAttempts = 12
    /// `MADOGUCHI_OUTBOX_RETRY_SECONDS`: the first retry's delay; each later one doubles, capped at
    /// `retryCap` (`MADOGUCHI_OUTBOX_RETRY_CAP_SECONDS`), less up to half at random (jitter).
    public var retryBase: Duration = .seconds(30)
    public var retryCap: Duration = .seconds(3600)
    /// `MADOGUCHI_OUTBOX_POLL_MILLISECONDS`: how often an idle worker looks for work.
    public var pollInterval: Duration = .seconds(1)

    public init() {}

    public struct DKIMKey: Sendable {
        public var selector: String
        public var privateKeyPEM: String
        public init(selector: String, privateKeyPEM: String) {
            self.selector = selector
            self.privateKeyPEM = privateKeyPEM
        }
    }

    /// Twilio's Messages resource. The auth token is the first of `MADOGUCHI_TWILIO_AUTH_TOKENS`.
    public struct TwilioSending: Sendable {
        /// `MADOGUCHI_TWILIO_ACCOUNT_SID`.
        public var accountSID: String
        public var authToken: String
        /// `MADOGUCHI_TWILIO_FROM`: a number (`+81…`) or a Messaging Service SID (`MG…`).
        public var from: String
        /// `MADOGUCHI_TWILIO_API_URL` (default `https://api.twilio.com`).
        public var apiURL: String = "https://api.twilio.com"
    }

    /// Vonage's SMS API.
    public struct VonageSending: Sendable {
        /// `MADOGUCHI_VONAGE_API_KEY`, `MADOGUCHI_VONAGE_API_SECRET`.
        public var apiKey: String
        public var apiSecret: String
        /// `MADOGUCHI_VONAGE_FROM`: the sender number or name.
        public var from: String
        /// `MADOGUCHI_VONAGE_API_URL` (default `https://rest.nexmo.com`).
        public var apiURL: String = "https://rest.nexmo.com"
    }

    /// LINE's push API.
    public struct LineSending: Sendable {
        /// `MADOGUCHI_LINE_CHANNEL_ACCESS_TOKEN`.
        public var channelAccessToken: String
        /// `MADOGUCHI_LINE_API_URL` (default `https://api.line.me`).
        public var apiURL: String = "https://api.line.me"
    }

    /// The chat gateway that pushed the conversation in, taking our replies back: one signed JSON
    /// POST per reply and recipient (`ProviderDelivery.sendToGateway`).
    public struct ChatGatewaySending: Sendable {
        /// `MADOGUCHI_CHAT_GATEWAY_URL`: the http(s) URL replies are posted to.
        public var url: String
        /// `MADOGUCHI_CHAT_GATEWAY_SECRET`: a Standard Webhooks secret (`whsec_` and base64) the posts
        /// are signed with, as outgoing webhooks are.
        public var secret: String

        public init(url: String, secret: String) {
            self.url = url
            self.secret = secret
        }
    }

    /// Channels whose replies can leave now.
    var deliverableChannels: [Channel] {
        var channels: [Channel] = []
        if smtp != nil && mailFrom != nil { channels += [.email, .webform] }
        if twilio != nil || vonage != nil { channels.append(.sms) }
        if line != nil || chatGateway != nil { channels.append(.chat) }
        return channels
    }

    /// What `/health/ready` reports, channel by channel.
    public var summary: [String: String] {
        [
            "email": smtp.map { mailFrom == nil ? "not configured (MADOGUCHI_MAIL_FROM missing)" : "\($0)" }
                ?? "not configured (MADOGUCHI_SMTP_URL): replies wait in the outbox",
            "sms": twilio != nil ? "twilio" : vonage != nil ? "vonage" : "not configured: replies wait in the outbox",
            "line": line != nil ? "line" : chatGateway != nil ? "through the chat gateway" : "not configured: replies wait in the outbox",
            "chat_gateway": chatGateway.map { URL(string: $0.url)?.host.map { "posts to \($0)" } ?? "configured" }
                ?? (line != nil ? "not configured: replies to chat identities other than LINE fail" : "not configured: replies wait in the outbox"),
        ]
    }

    static func fromEnvironment(_ value: @escaping (String) -> String?, providers: ProviderSettings) throws -> DeliverySettings {
        var settings = DeliverySettings()
        func seconds(_ name: String, in range: ClosedRange<Int>) throws -> Duration? { try SettingReader(value: value).seconds(name, in: range) }
        if let url = value("MADOGUCHI_SMTP_URL") {
            settings.smtp = try SMTPRelay(url: url, caFile: value("MADOGUCHI_SMTP_CA_FILE"), heloName: value("MADOGUCHI_SMTP_HELO"))
            if let caFile = value("MADOGUCHI_SMTP_CA_FILE"), !FileManager.default.isReadableFile(atPath: caFile) {
                throw ConfigurationError("MADOGUCHI_SMTP_CA_FILE=\(caFile) cannot be read")
            }
        }
        if let from = value("MADOGUCHI_MAIL_FROM") {
            guard let address = MailAddress.list(Array(from.utf8)).first, address.address.contains("@") else {
                throw ConfigurationError("MADOGUCHI_MAIL_FROM=\(from) is not an address like 'Shop Support <support@shop.example>'")
            }
            // Every reply's Message-ID and DKIM's d= are written at the domain's A-label.
            guard IDNA.asciiDomain(address.domain) != nil else {
                throw ConfigurationError("MADOGUCHI_MAIL_FROM=\(from) has a domain no mail can be sent from ('\(address.domain)' has no ASCII form)")
            }
            settings.mailFrom = address
        }
        if let forms = value("MADOGUCHI_FORM_MAIL_FROM") {
            settings.formMailFrom = try forms.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { entry in
                guard let address = MailAddress.list(Array(entry.utf8)).first, address.address.contains("@") else {
                    throw ConfigurationError("MADOGUCHI_FORM_MAIL_FROM: '\(entry)' is not an address (write them separated by commas: wordpress@shop.example,form@shop.example)")
                }
                return address.address
            }
        }
        if let extra = value("MADOGUCHI_CARRIER_DOMAINS") {
            settings.carrierDomains.formUnion(extra.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
        }
        if let keyFile = value("MADOGUCHI_DKIM_KEY_FILE") {
            guard let selector = value("MADOGUCHI_DKIM_SELECTOR") else {
                throw ConfigurationError("MADOGUCHI_DKIM_KEY_FILE is set but MADOGUCHI_DKIM_SELECTOR is not")
            }
            guard let pem = try? String(contentsOfFile: keyFile, encoding: .utf8) else {
                throw ConfigurationError("MADOGUCHI_DKIM_KEY_FILE=\(keyFile) cannot be read")
            }
            settings.dkim = DKIMKey(selector: selector, privateKeyPEM: pem)
        }
        if let sid = value("MADOGUCHI_TWILIO_ACCOUNT_SID") {
            guard let token = providers.twilioAuthTokens.first, let from = value("MADOGUCHI_TWILIO_FROM") else {
                throw ConfigurationError("MADOGUCHI_TWILIO_ACCOUNT_SID needs MADOGUCHI_TWILIO_AUTH_TOKENS and MADOGUCHI_TWILIO_FROM to send")
            }
            settings.twilio = TwilioSending(accountSID: sid, authToken: token, from: from, apiURL: try apiURL(value("MADOGUCHI_TWILIO_API_URL"), "MADOGUCHI_TWILIO_API_URL") ?? "https://api.twilio.com")
        }
        if let key = value("MADOGUCHI_VONAGE_API_KEY") {
            guard let secret = value("MADOGUCHI_VONAGE_API_SECRET"), let from = value("MADOGUCHI_VONAGE_FROM") else {
                throw ConfigurationError("MADOGUCHI_VONAGE_API_KEY needs MADOGUCHI_VONAGE_API_SECRET and MADOGUCHI_VONAGE_FROM to send")
            }
            settings.vonage = VonageSending(apiKey: key, apiSecret: secret, from: from, apiURL: try apiURL(value("MADOGUCHI_VONAGE_API_URL"), "MADOGUCHI_VONAGE_API_URL") ?? "https://rest.nexmo.com")
        }
        if let token = value("MADOGUCHI_LINE_CHANNEL_ACCESS_TOKEN") {
            settings.line = LineSending(channelAccessToken: token, apiURL: try apiURL(value("MADOGUCHI_LINE_API_URL"), "MADOGUCHI_LINE_API_URL") ?? "https://api.line.me")
        }
        if let url = value("MADOGUCHI_CHAT_GATEWAY_URL") {
            // The endpoint as written, trailing slash included (a router may tell /hooks/ from /hooks).
            let checked = try apiURL(url, "MADOGUCHI_CHAT_GATEWAY_URL", base: false) ?? url
            guard let secret = value("MADOGUCHI_CHAT_GATEWAY_SECRET"), StandardWebhooks.key(secret).map({ !$0.isEmpty }) == true else {
                throw ConfigurationError(
                    "MADOGUCHI_CHAT_GATEWAY_URL needs MADOGUCHI_CHAT_GATEWAY_SECRET, a Standard Webhooks secret the gateway verifies our posts with "
                        + "(whsec_ and base64, e.g. whsec_$(openssl rand -base64 24))")
            }
            settings.chatGateway = ChatGatewaySending(url: checked, secret: secret)
        }
        settings.autoReplyTemplate = value("MADOGUCHI_AUTO_REPLY_TEMPLATE")
        if let raw = value("MADOGUCHI_AUTO_REPLY_DAILY_CAP") {
            guard let number = Int(raw), (1...100).contains(number) else { throw ConfigurationError("MADOGUCHI_AUTO_REPLY_DAILY_CAP=\(raw) is not in 1...100") }
            settings.autoReplyDailyCap = number
        }
        // Read as every on/off setting is (yes/no too, as MADOGUCHI_WEBHOOK_WORKER takes).
        if let on = try SettingReader(value: value).flag("MADOGUCHI_OUTBOX_WORKER") { settings.runsInServe = on }
        if let raw = value("MADOGUCHI_OUTBOX_CONCURRENCY") {
            guard let number = Int(raw), (1...64).contains(number) else { throw ConfigurationError("MADOGUCHI_OUTBOX_CONCURRENCY=\(raw) is not in 1...64") }
            settings.concurrency = number
        }
        if let raw = value("MADOGUCHI_OUTBOX_MAX_ATTEMPTS") {
            guard let number = Int(raw), (1...100).contains(number) else { throw ConfigurationError("MADOGUCHI_OUTBOX_MAX_ATTEMPTS=\(raw) is not in 1...100") }
            settings.maxAttempts = number
        }
        if let lease = try seconds("MADOGUCHI_OUTBOX_LEASE_SECONDS", in: 2...86_400) { settings.lease = lease }
        if let timeout = try seconds("MADOGUCHI_SMTP_COMMAND_TIMEOUT_SECONDS", in: 1...3600) {
            settings.smtpTimeouts.command = .seconds(Int64(timeout.components.seconds))
        }
        if let timeout = try seconds("MADOGUCHI_SMTP_DATA_TIMEOUT_SECONDS", in: 1...3600) {
            settings.smtpTimeouts.dataEnd = .seconds(Int64(timeout.components.seconds))
        }
        if let raw = value("MADOGUCHI_OUTBOX_POLL_MILLISECONDS") {
            guard let number = Int(raw), (10...60_000).contains(number) else {
                throw ConfigurationError("MADOGUCHI_OUTBOX_POLL_MILLISECONDS=\(raw) is not in 10...60000")
            }
            settings.pollInterval = .milliseconds(number)
        }
        if let base = try seconds("MADOGUCHI_OUTBOX_RETRY_SECONDS", in: 0...86_400) { settings.retryBase = base }
        if let cap = try seconds("MADOGUCHI_OUTBOX_RETRY_CAP_SECONDS", in: 0...(7 * 86_400)) { settings.retryCap = cap }
        try SettingReader.checkRetryCap(settings.retryCap, "MADOGUCHI_OUTBOX_RETRY_CAP_SECONDS", atLeast: settings.retryBase, "MADOGUCHI_OUTBOX_RETRY_SECONDS")
        return settings
    }

    /// An http(s) URL; a `base` one (a provider's API root, paths appended to it) without its trailing slash.
    private static func apiURL(_ raw: String?, _ name: String, base: Bool = true) throws -> String? {
        guard let raw else { return nil }
        guard let url = URL(string: raw), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw ConfigurationError("\(name)=\(raw) is not an http(s) URL")
        }
        return base && raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }
}
