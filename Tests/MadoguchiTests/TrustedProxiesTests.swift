import Testing
@testable import Madoguchi

@Suite("The client address behind trusted proxies")
struct TrustedProxiesTests {
    private let proxies = try! TrustedProxies("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8")

    @Test("a trusted proxy's X-Forwarded-For names the client: the nearest address that is not a proxy")
    func behindProxies() {
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: "203.0.113.7") == "203.0.113.7")
        #expect(proxies.client(peer: "10.1.2.3", forwardedFor: "198.51.100.9, 203.0.113.7, 10.0.0.5") == "203.0.113.7",
                "what the client wrote itself (198.51.100.9) is not believed")
        #expect(proxies.client(peer: "::1", forwardedFor: "[2001:db8::1]:443") == "2001:db8::1")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: "203.0.113.7:51234") == "203.0.113.7")
        #expect(proxies.client(peer: "fd12::1", forwardedFor: "2001:db8::2") == "2001:db8::2")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: "10.0.0.1, 10.0.0.2") == "10.0.0.1", "all proxies: the first")
        #expect(proxies.client(peer: "::ffff:127.0.0.1", forwardedFor: "203.0.113.7") == "203.0.113.7", "IPv4 on a dual-stack listener")
    }

    @Test("anyone else's header is ignored, and so is a header that names no address")
    func notBelieved() {
        #expect(proxies.client(peer: "203.0.113.7", forwardedFor: "198.51.100.9") == "203.0.113.7")
        #expect(proxies.client(peer: "11.0.0.1", forwardedFor: "198.51.100.9") == "11.0.0.1", "10.0.0.0/8 ends at 10.255.255.255")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: nil) == "127.0.0.1")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: "unknown, 203.0.113.7") == "203.0.113.7")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: "203.0.113.7, garbage") == "127.0.0.1")
        #expect(TrustedProxies.none.client(peer: "127.0.0.1", forwardedFor: "203.0.113.7") == "127.0.0.1", "none trusted by default")
    }

    @Test("the setting names addresses and ranges; anything else is refused at start")
    func setting() throws {
        #expect(throws: ConfigurationError.self) { try TrustedProxies("localhost") }
        #expect(throws: ConfigurationError.self) { try TrustedProxies("10.0.0.0/33") }
        #expect(throws: ConfigurationError.self) { try TrustedProxies("::1/129") }
        #expect(try TrustedProxies(" 192.168.0.0/16 ,, ").trusts("192.168.44.1"))
        #expect(try !TrustedProxies("192.168.0.0/16").trusts("192.169.0.1"))
        #expect(try TrustedProxies("0.0.0.0/0").trusts("8.8.8.8"))
    }
}
