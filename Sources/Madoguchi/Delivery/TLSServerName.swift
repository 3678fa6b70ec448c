/// The name a TLS client sends (SNI) and checks the certificate against, for a host as written in a
/// URL: a host name is its own; an address literal (`10.0.0.5`, `::1`) has none, since SNI may not
/// carry one (RFC 6066 §3) and NIOSSL refuses to, and the certificate is then checked against the
/// address connected to (its IP subjectAltName).
enum TLSServerName {
    static func forHost(_ host: String) -> String? {
        host.contains(":") || host.split(separator: ".").allSatisfy({ Int($0) != nil }) ? nil : host
    }
}
