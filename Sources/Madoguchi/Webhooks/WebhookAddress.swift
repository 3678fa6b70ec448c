import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a webhook may point. A webhook makes this server send requests wherever an admin says, so
/// the address is checked when it is saved and again — after resolving the name — before every
/// delivery (a name can be re-pointed at an internal address later): https only (plain http to
/// this machine alone), no credentials in the URL, and no private, loopback, link-local or cloud
/// metadata address unless `MADOGUCHI_WEBHOOK_ALLOW_PRIVATE_ADDRESSES` says so. Redirects are never
/// followed (a 3xx is a failed delivery).
struct WebhookAddress: Sendable {
    let url: URL
    let host: String
    let port: Int

    static func parse(_ text: String, allowPrivate: Bool) throws -> WebhookAddress {
        func refuse(_ why: String) -> Problem {
            Problem.validationFailed([.init(pointer: "/url", message: why)])
        }
        guard text.count <= 2000 else { throw refuse("is longer than 2000 characters") }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased(), !host.isEmpty else {
            throw refuse("is not an absolute URL like https://hooks.example.jp/madoguchi")
        }
        guard url.user == nil, url.password == nil else { throw refuse("must not carry credentials; the signature authenticates us") }
        let loopback = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host)
        switch scheme {
        case "https": break
        case "http" where loopback: break
        case "http": throw refuse("must use https (plain http only to this machine)")
        default: throw refuse("must be an https URL, not \(scheme):")
        }
        if !allowPrivate, let literal = Self.literalAddress(host), let why = Self.forbidden(literal) {
            throw refuse("points at \(why) (\(host)); set MADOGUCHI_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true to allow it")
        }
        if !allowPrivate && loopback { throw refuse("points at this machine; set MADOGUCHI_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true to allow it") }
        return WebhookAddress(url: url, host: host, port: url.port ?? (scheme == "https" ? 443 : 80))
    }

    /// The addresses the name resolves to now, the first allowed one first; throws when every one
    /// is forbidden (or none resolves).
    func resolve(allowPrivate: Bool) throws -> SocketAddress {
        let addresses: [SocketAddress]
        do {
            addresses = try Self.lookup(host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
        } catch {
            throw WebhookAddressError(description: "\(host) does not resolve: \(error)")
        }
        for address in addresses {
            guard let ip = address.ipAddress else { continue }
            if allowPrivate || Self.forbidden(ip) == nil { return address }
        }
        let shown = addresses.compactMap(\.ipAddress).joined(separator: ", ")
        throw WebhookAddressError(description: "\(host) resolves to \(shown.isEmpty ? "nothing" : shown), which webhooks may not reach")
    }

    private static func lookup(_ host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else { throw WebhookAddressError(description: String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let info = current {
            if let address = info.pointee.ai_addr {
                switch Int32(info.pointee.ai_family) {
                case AF_INET:
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addresses.append(SocketAddress($0.pointee, host: host)) }
                case AF_INET6:
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addresses.append(SocketAddress($0.pointee, host: host)) }
                default: break
                }
            }
            current = info.pointee.ai_next
        }
        return addresses
    }

    private static func literalAddress(_ host: String) -> String? {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return (try? SocketAddress(ipAddress: bare, port: 0)) != nil ? bare : nil
    }

    /// Why an IP address is off limits, if it is.
    static func forbidden(_ ip: String) -> String? {
        if ip.contains(":") {
            let lower = ip.lowercased()
            if lower == "::1" { return "the loopback address" }
            if lower == "::" { return "the unspecified address" }
            if lower.hasPrefix("fe8") || lower.hasPrefix("fe9") || lower.hasPrefix("fea") || lower.hasPrefix("feb") { return "a link-local address" }
            if lower.hasPrefix("fc") || lower.hasPrefix("fd") { return "a private (unique local) address" }
            if lower.hasPrefix("::ffff:") { return forbidden(String(lower.dropFirst(7))) }
            return nil
        }
        let octets = ip.split(separator: ".").compactMap { Int($0) }
        guard octets.count == 4 else { return "an address that cannot be checked" }
        switch (octets[0], octets[1]) {
        case (127, _): return "the loopback network"
        case (10, _), (172, 16...31), (192, 168): return "a private network"
        case (169, 254): return "a link-local address (cloud metadata lives at 169.254.169.254)"
        case (100, 64...127): return "the carrier-grade NAT range"
        case (0, _): return "the unspecified network"
        case (224...255, _): return "a multicast or reserved address"
        default: return nil
        }
    }
}

struct WebhookAddressError: Error, CustomStringConvertible {
    let description: String
}
