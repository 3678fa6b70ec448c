import Foundation
import NIOCore
import Synchronization
import Testing
@testable import Madoguchi

/// Timing-free: a name server that does not answer is a gate the test opens, and every timeout that
/// must not run out is a minute (the suite shares two cores with the integration tests).
@Suite("Webhook name lookups on threads of their own")
struct WebhookResolverTests {
    /// Lookups that count their starts; `hung.example` waits until `released` opens.
    final class GatedLookUp: Sendable {
        let starts = Mutex<[String: Int]>([:])
        let released = Gate()

        func callAsFunction(_ address: WebhookAddress) throws -> SocketAddress {
            starts.withLock { $0[address.host, default: 0] += 1 }
            while address.host == "hung.example" && !released.isOpen { Thread.sleep(forTimeInterval: 0.01) }
            return try SocketAddress(ipAddress: "93.184.216.34", port: address.port)
        }

        func count(_ host: String) -> Int { starts.withLock { $0[host] ?? 0 } }
    }

    static func address(_ host: String) throws -> WebhookAddress { try WebhookAddress.parse("https://\(host)/hook", allowPrivate: false) }

    static func resolver(threads: Int, timeout: Duration, _ lookUp: GatedLookUp) -> WebhookResolver {
        var settings = WebhookSettings()
        settings.timeout = timeout
        settings.lookUp = { address, _ in try lookUp(address) }
        return WebhookResolver(threads: threads, settings: settings)
    }

    @Test("one receiver's hung name servers hold one thread, not all: its lookups are joined, and a healthy receiver's goes through meanwhile")
    func hungNamesShareOneThread() async throws {
        let lookUp = GatedLookUp()
        let resolver = Self.resolver(threads: 2, timeout: .seconds(60), lookUp)
        defer { resolver.shutdown() }
        let hung = try Self.address("hung.example")
        let healthy = try Self.address("ok.example")
        // Three deliveries to the hung receiver in flight (endpoints sharing its host, or retries).
        let waits = (0..<3).map { _ in Task { try await resolver.resolve(hung, allowPrivate: false) } }
        #expect(await ChildProcess.eventually(timeout: .seconds(60)) { lookUp.count("hung.example") == 1 })
        // Opened in any case after a minute, so that a failure here is a failed expectation, not a hang.
        let fallback = Task { try? await Task.sleep(for: .seconds(60)); lookUp.released.open() }
        _ = try await resolver.resolve(healthy, allowPrivate: false)
        #expect(!lookUp.released.isOpen, "the healthy name waited for the hung one")
        lookUp.released.open()
        fallback.cancel()
        for wait in waits { _ = try await wait.value }
        #expect(lookUp.count("hung.example") == 1)
    }

    @Test("a lookup whose waiters all gave up while it was queued is not started; the name is looked up afresh next time")
    func abandonedLookupSkipped() async throws {
        let lookUp = GatedLookUp()
        let resolver = Self.resolver(threads: 1, timeout: .seconds(2), lookUp)
        defer { resolver.shutdown() }
        let hung = try Self.address("hung.example")
        let other = try Self.address("other.example")
        let first = Task { try await resolver.resolve(hung, allowPrivate: false) }
        #expect(await ChildProcess.eventually(timeout: .seconds(60)) { lookUp.count("hung.example") == 1 })
        // Queued behind the hung lookup on the only thread; it gives up before the thread frees.
        await #expect(throws: WebhookAddressError.self) { try await resolver.resolve(other, allowPrivate: false) }
        await #expect(throws: WebhookAddressError.self) { try await first.value }
        lookUp.released.open()
        // Queued after the abandoned one (one thread, in order), so that one has had its turn when
        // this answers. Tried again should the machine be so loaded that 2 s pass first.
        var attempts = 0
        for _ in 1...5 {
            attempts += 1
            if (try? await resolver.resolve(other, allowPrivate: false)) != nil { break }
        }
        #expect(lookUp.count("other.example") == attempts)
    }
}
