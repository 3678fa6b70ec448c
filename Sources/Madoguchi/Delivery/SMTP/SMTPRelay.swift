import Foundation

/// Where replies are handed over for delivery: `MADOGUCHI_SMTP_URL`.
///
/// `smtp://[user:password@]host[:port][?starttls=required|opportunistic|off]` (port 587 by default,
/// STARTTLS when offered) or `smtps://…` for TLS from the first byte (port 465). Certificates are
/// verified against the system's roots, or the PEM bundle in `MADOGUCHI_SMTP_CA_FILE`.
public struct SMTPRelay: Sendable, Equatable, CustomStringConvertible {
    public enum Security: String, Sendable {
        /// `smtps://`: TLS from the first byte (RFC 8314).
        case implicitTLS = "tls"
        /// STARTTLS, or no mail is sent.
        case startTLSRequired = "required"
        /// STARTTLS when the server offers it.
        case startTLSOpportunistic = "opportunistic"
        /// Plain text (a relay on the same host).
        case plain = "off"
    }

    public var host: String
    public var port: Int
    public var security: Security
    public var username: String?
    public var password: String?
    /// `MADOGUCHI_SMTP_CA_FILE`: trust these CAs instead of the system's (a private relay).
    public var caFile: String?
    /// The name we give in EHLO: `MADOGUCHI_SMTP_HELO`, else this machine's host name.
    public var heloName: String

    public init(url: String, caFile: String? = nil, heloName: String? = nil) throws {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), let host = parts.host, !host.isEmpty else {
            throw ConfigurationError("MADOGUCHI_SMTP_URL=\(Self.redacted(url)) is not a URL like smtp://user:password@mail.example.jp:587")
        }
        switch scheme {
        case "smtps":
            security = .implicitTLS
        case "smtp":
            let mode = parts.queryItems?.first { $0.name == "starttls" }?.value ?? "opportunistic"
            switch mode.lowercased() {
            case "required": security = .startTLSRequired
            case "opportunistic": security = .startTLSOpportunistic
            case "off": security = .plain
            default: throw ConfigurationError("MADOGUCHI_SMTP_URL: starttls=\(mode) is not one of required, opportunistic, off")
            }
        default:
            throw ConfigurationError("MADOGUCHI_SMTP_URL=\(Self.redacted(url)) must start with smtp:// or smtps://")
        }
        self.host = host
        self.port = parts.port ?? (security == .implicitTLS ? 465 : 587)
        guard (1...65535).contains(port) else { throw ConfigurationError("MADOGUCHI_SMTP_URL: port \(port) is out of range") }
        // Decoded once: URLComponents' `user` and `password` are decoded already (decoded again, a
        // password `50%25off` became none at all, and `ab%2541` became `abA`: every AUTH a 535).
        username = parts.user
        password = parts.password
        if (username == nil) != (password == nil) {
            throw ConfigurationError("MADOGUCHI_SMTP_URL: give both a user and a password, or neither")
        }
        self.caFile = caFile
        self.heloName = heloName ?? (ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName)
    }

    /// A relay on this machine, where a password may travel without TLS.
    var isLoopback: Bool { ["localhost", "127.0.0.1", "::1"].contains(host.lowercased()) }

    /// Host, port and security, never the password: for logs, `/health/ready` and errors.
    public var description: String { "\(security == .implicitTLS ? "smtps" : "smtp")://\(host):\(port) (\(security.rawValue))" }

    /// Everything between `//` and the last `@`: a password may hold `/`, `@` or `?` unescaped (a
    /// base64 one often does), and such a URL is exactly the one that fails to parse and is printed.
    static func redacted(_ url: String) -> String {
        guard let slashes = url.range(of: "//"), let at = url[slashes.upperBound...].lastIndex(of: "@") else { return url }
        return url[..<slashes.upperBound] + "***" + url[at...]
    }
}
