import Foundation
import NIOCore
import Synchronization
import Testing
@testable import Madoguchi

@Suite("Webhook name lookups on threads of their own")
struct WebhookResolverTests {
    /// Lookups that counts its starts, and hangs for `hangs` (a name server that does not answer).
    final class HangingLookUp: Sendable {
        let starts = Mutex<[String: Int]>([:])
        func callAsFunction(_ address: WebhookAddress, hangs: Set<String>) throws -> SocketAddress {
            starts.withLock { $0[address.host, default: 0] += 1 }
            if hangs.contains(address.host) { Thread.sleep(forTimeInterval: 1.5) }
            return try SocketAddress(ipAddress: "93.184.216.34", port: address.port)
        }
    }

    @Test("one receiver's hung name servers hold one thread, not all: its lookups are joined, and a healthy receiver's goes through at once")
    func hungNamesShareOneThread() async throws {
        let lookUp = HangingLookUp()
        var settings = WebhookSettings()
        settings.timeout = .seconds(1)
        settings.lookUp = { address, _ in try lookUp(address, hangs: ["hung.example"]) }
        let resolver = WebhookResolver(threads: 2, settings: settings)
        defer { resolver.shutdown() }
        let hung = try WebhookAddress.parse("https://hung.example/hook", allowPrivate: false)
        let healthy = try WebhookAddress.parse("https://ok.example/hook", allowPrivate: false)
        // Three deliveries to the hung receiver in flight (endpoints sharing its host, or retries).
        let waits = (0..<3).map { _ in Task { try await resolver.resolve(hung, allowPrivate: false) } }
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        _ = try await resolver.resolve(healthy, allowPrivate: false)
        #expect(ContinuousClock.now - started < .milliseconds(500))
        for wait in waits {
            await #expect(throws: WebhookAddressError.self) { try await wait.value }
        }
        #expect(lookUp.starts.withLock { $0["hung.example"] } == 1)
    }

    @Test("a lookup whose waiters all gave up while it was queued is not started")
    func abandonedLookupSkipped() async throws {
        let lookUp = HangingLookUp()
        var settings = WebhookSettings()
        settings.timeout = .milliseconds(300)
        settings.lookUp = { address, _ in try lookUp(address, hangs: ["hung.example"]) }
        let resolver = WebhookResolver(threads: 1, settings: settings)
        defer { resolver.shutdown() }
        let hung = try WebhookAddress.parse("https://hung.example/hook", allowPrivate: false)
        let other = try WebhookAddress.parse("https://other.example/hook", allowPrivate: false)
        let first = Task { try await resolver.resolve(hung, allowPrivate: false) }
        try await Task.sleep(for: .milliseconds(50))
        // Queued behind the hung lookup on the only thread; it gives up before the thread frees.
        await #expect(throws: WebhookAddressError.self) { try await resolver.resolve(other, allowPrivate: false) }
        await #expect(throws: WebhookAddressError.self) { try await first.value }
        try await Task.sleep(for: .seconds(1.5))
        #expect(lookUp.starts.withLock { $0["other.example"] } == nil)
        // The name is looked up afresh next time.
        _ = try await resolver.resolve(other, allowPrivate: false)
        #expect(lookUp.starts.withLock { $0["other.example"] } == 1)
    }
}
