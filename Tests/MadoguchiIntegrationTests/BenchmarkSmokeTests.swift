import Foundation
import Logging
import Synchronization
import Testing
@testable import Madoguchi
@testable import MadoguchiBench

/// The benchmarks are not tests of speed (they print ratios; nothing here asserts a rate), but they
/// must keep running: each is run briefly and must have moved work through the service.
@Suite("Benchmarks still run")
struct BenchmarkSmokeTests {
    static var quiet: Logger {
        var logger = Logger(label: "bench-smoke")
        logger.logLevel = .error
        return logger
    }

    @Test("bench webhooks posts signed LINE and Twilio requests and reports both against pgbench")
    func webhooks() async throws {
        var benchmark = WebhookBenchmark()
        benchmark.seconds = 1
        benchmark.clients = 1
        benchmark.customers = 5
        let lines = Mutex<[String]>([])
        try await benchmark.run(logger: Self.quiet) { line in lines.withLock { $0.append(line) } }
        let reported = lines.withLock { $0 }
        for provider in ["line", "twilio", "webform"] {
            let line = try #require(reported.first { $0.hasPrefix(provider) }, "\(reported)")
            let rate = Double(line.dropFirst(provider.count).trimmingCharacters(in: .whitespaces).prefix { $0.isNumber || $0 == "." }) ?? 0
            #expect(rate > 0, "\(line)")
        }
    }

    @Test("bench outbound delivers from the outbox and with the bare client, and reports the ratio")
    func outbound() async throws {
        var benchmark = OutboundBenchmark()
        benchmark.replies = 20
        benchmark.workerCounts = [1]
        let lines = Mutex<[String]>([])
        try await benchmark.run(logger: Self.quiet) { line in lines.withLock { $0.append(line) } }
        let reported = lines.withLock { $0 }
        let row = try #require(reported.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("1 ") }, "\(reported)")
        let numbers = row.split(separator: " ").compactMap { Double($0) }
        // workers, connections, outbox, bare over as many connections, ratio, bare over one, ratio.
        #expect(numbers.count == 7 && numbers[2] > 0 && numbers[3] > 0 && numbers[5] > 0, "\(row)")
    }

    @Test("bench events follows the feed three ways under ingest and delivers webhooks, next to bare clients")
    func events() async throws {
        var benchmark = EventsBenchmark()
        benchmark.seconds = 1
        benchmark.clients = 1
        benchmark.endpointCounts = [2]
        let figures = try await benchmark.run(logger: Self.quiet) { _ in }
        #expect(figures.events > 0)
        for (name, lag) in figures.lag {
            #expect(lag.count == figures.events, "\(name) had \(lag.count) of \(figures.events) events")
        }
        #expect(figures.webhooks.count == 1 && figures.webhooks[0].service > 0 && figures.webhooks[0].bare > 0)
    }

    @Test("bench claim-next claims through the service and through pgbench")
    func claimNext() async throws {
        var benchmark = ClaimNextBenchmark()
        benchmark.agentCounts = [2]
        benchmark.seconds = 1
        benchmark.tickets = 2_000
        let rows = try await benchmark.run(logger: Self.quiet) { _ in }
        #expect(rows.count == 1)
        #expect(rows[0].service > 0 && rows[0].pgbench > 0)
    }
}
