import Foundation

/// The reverse proxies whose `X-Forwarded-For` the service believes (`MADOGUCHI_TRUSTED_PROXIES`).
///
/// Behind a TLS proxy every connection comes from the proxy, so the limits kept per client address
/// (wrong API keys, the keyless provider webhooks) would be one limit shared by everyone: a stranger
/// sending made-up keys would soon have every gateway and agent refused. A request from a trusted
/// proxy is counted by the address the proxy saw instead: the nearest address in `X-Forwarded-For`
/// that is not itself a trusted proxy. A request from anyone else is counted by its peer address, and
/// the header it sends is ignored (anyone can write one).
struct TrustedProxies: Sendable, Equatable {
    /// An address range: the leading `prefix` bits of `bytes` (4 bytes for IPv4, 16 for IPv6).
    struct Network: Sendable, Equatable {
        let bytes: [UInt8]
        let prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefix
            for (ours, theirs) in zip(bytes, address) where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                guard ours & mask == theirs & mask else { return false }
                remaining -= 8
            }
            return true
        }
    }

    let networks: [Network]

    static let none = TrustedProxies(networks: [])

    init(networks: [Network]) {
        self.networks = networks
    }

    /// `setting`: addresses or ranges, separated by commas (`127.0.0.1, 10.0.0.0/8, ::1`).
    init(_ setting: String) throws {
        var networks: [Network] = []
        for item in setting.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "/", maxSplits: 1).map(String.init)
            guard let bytes = Self.bytes(of: parts[0]) else {
                throw ConfigurationError("MADOGUCHI_TRUSTED_PROXIES: '\(item)' is not an IP address or a range such as 10.0.0.0/8")
            }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...(bytes.count * 8)).contains(prefix) else {
                throw ConfigurationError("MADOGUCHI_TRUSTED_PROXIES: '\(item)' has a prefix length outside 0–\(bytes.count * 8)")
            }
            networks.append(Network(bytes: bytes, prefix: prefix))
        }
        self.networks = networks
    }

    func trusts(_ address: String) -> Bool {
        guard let bytes = Self.bytes(of: address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// The client's address: `peer`, or when `peer` is a trusted proxy, the nearest address of
    /// `forwardedFor` (each proxy appends the address it was called from, so the list is read from
    /// its end) that is not one. A list of nothing but trusted proxies gives its first entry; a
    /// proxy that sent no header, or an entry that is no address, gives `peer`.
    func client(peer: String?, forwardedFor: String?) -> String? {
        guard let peer, !networks.isEmpty, trusts(peer), let forwardedFor else { return peer }
        let hops = forwardedFor.split(separator: ",").map { Self.address(inForwardedEntry: $0.trimmingCharacters(in: .whitespaces)) }
        for hop in hops.reversed() {
            guard let hop, Self.bytes(of: hop) != nil else { return peer }
            if !trusts(hop) { return hop }
        }
        return hops.first.flatMap { $0 } ?? peer
    }

    /// An entry as proxies write it: `203.0.113.7`, `203.0.113.7:51234`, `2001:db8::1` or `[2001:db8::1]:443`.
    private static func address(inForwardedEntry entry: String) -> String? {
        if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
            return String(entry[entry.index(after: entry.startIndex)..<close])
        }
        if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
            return String(entry[..<colon])
        }
        return entry.isEmpty ? nil : entry
    }

    /// The address's bytes, 4 for IPv4 (an IPv4-mapped IPv6 address included) and 16 for IPv6; nil
    /// when it is neither. The rate limiter reads client addresses with it too.
    static func bytes(of address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            // An IPv4 peer on a dual-stack listener (`::`) reads as ::ffff:a.b.c.d.
            if bytes.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] { return Array(bytes.suffix(4)) }
            return bytes
        }
        return nil
    }
}
