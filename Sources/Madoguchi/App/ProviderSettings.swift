import Foundation

/// What the provider-format webhooks need to tell a provider's request from a forgery.
///
/// Each secret setting takes a comma-separated list, newest first: while a secret is rotated, the
/// provider may still sign with the old one, so both verify until the old one is removed.
public struct ProviderSettings: Sendable {
    /// `MADOGUCHI_PUBLIC_URL`: the scheme, host and port the providers call (`https://support.example.jp`).
    /// Twilio signs the URL it requested, which a reverse proxy hides from us; without this setting the
    /// `Host` header is tried with https and with http.
    public var publicURL: String? = nil
    /// `MADOGUCHI_TWILIO_AUTH_TOKENS`: the account's auth token(s); Twilio requests are refused without one.
    public var twilioAuthTokens: [String] = []
    /// `MADOGUCHI_VONAGE_SIGNATURE_SECRETS`: the SMS API signature secret(s).
    public var vonageSignatureSecrets: [String] = []
    /// `MADOGUCHI_VONAGE_SIGNATURE_METHOD`: as chosen in the Vonage dashboard (its default is `md5hash`).
    var vonageSignatureMethod: WebhookSignature.VonageMethod = .md5hash
    /// `MADOGUCHI_VONAGE_ALLOW_UNSIGNED`: Vonage signs webhooks only once its support enables it; until
    /// then unsigned requests are refused unless this is `true` (and the proxy should allow only
    /// Vonage's addresses).
    public var vonageAllowUnsigned: Bool = false
    /// `MADOGUCHI_LINE_CHANNEL_SECRETS`: the Messaging API channel secret(s); LINE requests are refused without one.
    public var lineChannelSecrets: [String] = []

    public init() {}

    static func fromEnvironment(_ value: (String) -> String?) throws -> ProviderSettings {
        var settings = ProviderSettings()
        func list(_ name: String) -> [String] {
            (value(name) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let url = value("MADOGUCHI_PUBLIC_URL") {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil,
                  parsed.query == nil
            else {
                throw ConfigurationError("MADOGUCHI_PUBLIC_URL=\(url) is not an http(s) URL like https://support.example.jp")
            }
            settings.publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        settings.twilioAuthTokens = list("MADOGUCHI_TWILIO_AUTH_TOKENS")
        settings.vonageSignatureSecrets = list("MADOGUCHI_VONAGE_SIGNATURE_SECRETS")
        if let method = value("MADOGUCHI_VONAGE_SIGNATURE_METHOD") {
            guard let parsed = WebhookSignature.VonageMethod(rawValue: method.lowercased()) else {
                let names = WebhookSignature.VonageMethod.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigurationError("MADOGUCHI_VONAGE_SIGNATURE_METHOD=\(method) is not one of \(names)")
            }
            settings.vonageSignatureMethod = parsed
        }
        // The same words as every other on/off setting (on and off were refused here alone).
        let allowUnsigned = try withoutActuallyEscaping(value) { try SettingReader(value: $0).flag("MADOGUCHI_VONAGE_ALLOW_UNSIGNED") }
        if let allowUnsigned { settings.vonageAllowUnsigned = allowUnsigned }
        settings.lineChannelSecrets = list("MADOGUCHI_LINE_CHANNEL_SECRETS")
        return settings
    }
}
