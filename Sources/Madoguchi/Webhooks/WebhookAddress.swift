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
        // Foundation reads any number as the port, and the resolver takes it modulo 65536: :84155
        // delivered every signed event to whatever listened on 18619.
        if let port = url.port, !(1...65535).contains(port) { throw refuse("has port \(port); a port is 1 to 65535") }
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

    /// Why an IP address is off limits, if it is. IPv6 is read as its 16 bytes, so every way of writing
    /// an IPv4 address inside one (mapped, compatible, NAT64, 6to4) is judged as that IPv4 address.
    static func forbidden(_ ip: String) -> String? {
        if ip.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, ip, &address) == 1 else { return "an address that cannot be checked" }
            let b = withUnsafeBytes(of: &address) { Array($0) }
            func ipv4(_ from: Int) -> String { b[from..<from + 4].map(String.init).joined(separator: ".") }
            let zeroTo = { (end: Int) in b[0..<end].allSatisfy { $0 == 0 } }
            if zeroTo(16) { return "the unspecified address" }
            if zeroTo(15) && b[15] == 1 { return "the loopback address" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "a link-local address" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return "a site-local address" }
            if b[0] & 0xFE == 0xFC { return "a private (unique local) address" }
            if b[0] == 0xFF { return "a multicast address" }
            if zeroTo(10) && b[10] == 0xFF && b[11] == 0xFF { return forbidden(ipv4(12)) }
            if zeroTo(12) { return "an IPv4-compatible address (deprecated)" }
            if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..<12].allSatisfy({ $0 == 0 }) { return forbidden(ipv4(12)) }
            if b[0] == 0x20 && b[1] == 0x02 { return forbidden(ipv4(2)) }
            // Translated by the operator's own gateway to whatever IPv4 it serves, private included.
            if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4] == 0x00 && b[5] == 0x01 {
                return "a local-use NAT64 address (RFC 8215)"
            }
            if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return "a documentation network" }
            if b[0] == 0x01 && b[1] == 0x00 && b[2..<8].allSatisfy({ $0 == 0 }) { return "the discard-only network" }
            return nil
        }
        let octets = ip.split(separator: ".").compactMap { Int($0) }
        guard octets.count == 4 else { return "an address that cannot be checked" }
        switch (octets[0], octets[1]) {
        case (127, _): return "the loopback network"
        case (10, _), (172, 16...31), (192, 168): return "a private network"
        case (169, 254): return "a link-local address (cloud metadata lives at 169.254.169.254)"
        case (100, 64...127): return "the carrier-grade NAT range"
        case (198, 18...19): return "the benchmarking network"
        case (192, 0) where octets[2] == 0 || octets[2] == 2: return "a reserved or documentation network"
        case (198, 51) where octets[2] == 100, (203, 0) where octets[2] == 113: return "a documentation network"
        case (0, _): return "the unspecified network"
        case (224...255, _): return "a multicast or reserved address"
        default: return nil
        }
    }
}

struct WebhookAddressError: Error, CustomStringConvertible {
    let description: String
}
