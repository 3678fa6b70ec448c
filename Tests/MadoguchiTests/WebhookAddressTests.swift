import Testing
@testable import Madoguchi

@Suite("Where a webhook may point")
struct WebhookAddressTests {
    @Test("private, loopback, link-local, reserved and documentation addresses are refused, however IPv6 writes them", arguments: [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
        "198.18.0.1", "198.19.255.255", "192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9",
        "::1", "::", "fe80::1", "febf::1", "fec0::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:c0a8:0101::1",
        "64:ff9b:1::a9fe:a9fe", "64:ff9b:1:ffff::1", "2001:db8::1", "100::1",
    ])
    func refused(_ ip: String) {
        #expect(WebhookAddress.forbidden(ip) != nil, "\(ip)")
    }

    @Test("public addresses pass, IPv4 and IPv6, also through NAT64 and 6to4", arguments: [
        "93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:5db8:d822::1", "::ffff:8.8.8.8",
    ])
    func allowed(_ ip: String) {
        #expect(WebhookAddress.forbidden(ip) == nil, "\(ip)")
    }
}
