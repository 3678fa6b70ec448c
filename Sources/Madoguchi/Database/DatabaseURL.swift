import Foundation
import NIOSSL
import PostgresNIO

/// Reads `DATABASE_URL` the way libpq does, for the parts an operator uses:
/// `postgres://user:password@host:port/database?sslmode=require` over TCP, and
/// `postgresql:///database?host=/var/run/postgresql` (or a percent-encoded socket directory as the
/// host) over a Unix socket. `sslmode` is `disable`, `prefer` (the default), `require` (encrypt, trust
/// any certificate, as libpq does) or `verify-full`; `sslrootcert` names a CA file.
public enum DatabaseURL {
    /// - Parameter variable: the setting it came from, for messages (`MADOGUCHI_REPORTS_DATABASE_URL` too).
    public static func configuration(from text: String, variable: String = "DATABASE_URL") throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ConfigurationError("\(variable) must look like postgres://user:password@host:5432/database (got something else)")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        // Decoded once, as libpq does (URLComponents' `user`, `password` and `path` are decoded already:
        // decoding them again turned a password `50%25off` into none at all, and `ab%2541` into `abA`).
        // No user named: the one this process runs as, as libpq does (peer authentication over
        // the local socket, `postgresql:///madoguchi?host=/var/run/postgresql`, expects it).
        let username = components.user ?? query["user"] ?? ProcessUser.name ?? "postgres"
        let password = components.password ?? query["password"]
        var database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        if database.isEmpty { database = query["dbname"] ?? username }
        let port = components.port ?? query["port"].flatMap(Int.init) ?? 5432

        // An IPv6 address is written in brackets (`[2001:db8::5]`); the connection wants it without.
        let host = (components.percentEncodedHost?.removingPercentEncoding)
            .map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
            .flatMap { $0.isEmpty ? nil : $0 } ?? query["host"]
        if let host, host.hasPrefix("/") {
            return PostgresClient.Configuration(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        }
        let tls = try tlsMode(query["sslmode"] ?? "prefer", rootCertificate: query["sslrootcert"], variable: variable)
        return PostgresClient.Configuration(
            host: host ?? "localhost", port: port, username: username, password: password, database: database, tls: tls)
    }

    static func tlsMode(_ mode: String, rootCertificate: String?, variable: String) throws -> PostgresClient.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let rootCertificate {
            tls.trustRoots = .file(rootCertificate)
        }
        switch mode {
        case "disable":
            return .disable
        case "allow", "prefer":
            tls.certificateVerification = .none
            return .prefer(tls)
        case "require":
            tls.certificateVerification = rootCertificate == nil ? .none : .noHostnameVerification
            return .require(tls)
        case "verify-ca":
            tls.certificateVerification = .noHostnameVerification
            return .require(tls)
        case "verify-full":
            return .require(tls)
        default:
            throw ConfigurationError("\(variable) sslmode=\(mode) is not one of disable, prefer, require, verify-ca, verify-full")
        }
    }
}

/// The name of the user this process runs as. `getpwuid_r`, as `EmbeddedPostgres.account(named:)`
/// uses `getpwnam_r`: the plain calls return shared static storage that parallel lookups overwrite.
enum ProcessUser {
    static var name: String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(geteuid(), &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }
}
