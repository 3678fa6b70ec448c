import Foundation
import NIOSSL
import PostgresNIO

/// Reads `DATABASE_URL` the way libpq does, for the parts an operator uses:
/// `postgres://user:password@host:port/database?sslmode=require` over TCP, and
/// `postgresql:///database?host=/var/run/postgresql` (or a percent-encoded socket directory as the
/// host) over a Unix socket. `sslmode` is `disable`, `prefer` (the default), `require` (encrypt, trust
/// any certificate, as libpq does) or `verify-full`; `sslrootcert` names a CA file.
public enum DatabaseURL {
    public static func configuration(from text: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ConfigurationError("DATABASE_URL must look like postgres://user:password@host:5432/database (got something else)")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let username = components.user.flatMap { $0.removingPercentEncoding } ?? query["user"] ?? "postgres"
        let password = components.password.flatMap { $0.removingPercentEncoding } ?? query["password"]
        var database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = database.removingPercentEncoding ?? database
        if database.isEmpty { database = query["dbname"] ?? username }
        let port = components.port ?? query["port"].flatMap(Int.init) ?? 5432

        let host = (components.percentEncodedHost?.removingPercentEncoding).flatMap { $0.isEmpty ? nil : $0 } ?? query["host"]
        if let host, host.hasPrefix("/") {
            return PostgresClient.Configuration(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        }
        let tls = try tlsMode(query["sslmode"] ?? "prefer", rootCertificate: query["sslrootcert"])
        return PostgresClient.Configuration(
            host: host ?? "localhost", port: port, username: username, password: password, database: database, tls: tls)
    }

    static func tlsMode(_ mode: String, rootCertificate: String?) throws -> PostgresClient.Configuration.TLS {
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
            throw ConfigurationError("DATABASE_URL sslmode=\(mode) is not one of disable, prefer, require, verify-ca, verify-full")
        }
    }
}
