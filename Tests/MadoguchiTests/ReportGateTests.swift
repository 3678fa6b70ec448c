import Foundation
import Synchronization
import Testing
@testable import Madoguchi

@Suite("Report gate")
struct ReportGateTests {
    @Test("slots up to the limit at once; the next wait in arrival order and each takes over a freed slot")
    func order() async throws {
        let gate = ReportGate(concurrency: 2, wait: .seconds(60))
        try await gate.acquire()
        try await gate.acquire()
        #expect(gate.running == 2)
        let order = Arrivals()
        let first = Task { try await gate.acquire(); order.add(1) }
        try await Self.untilWaiting(gate, 1)
        let second = Task { try await gate.acquire(); order.add(2) }
        try await Self.untilWaiting(gate, 2)
        #expect(order.all.isEmpty)
        gate.release()
        try await first.value
        #expect(order.all == [1])
        gate.release()
        try await second.value
        #expect(order.all == [1, 2])
        #expect(gate.running == 2)
        gate.release()
        gate.release()
        #expect(gate.running == 0)
    }

    @Test("many short reports through one slot: none waits with the slot free (a release between a wait's decision and its place in line handed the slot to nobody)")
    func noLostWakeUp() async throws {
        // A wait lost with the slot free lasts its whole minute and ends in reports-busy, which fails
        // the group; one that is merely slow (a full run on two busy cores) does not.
        let gate = ReportGate(concurrency: 1, wait: .seconds(60))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { for _ in 0..<250 { try await gate.withSlot { await Task.yield() } } }
            }
            try await group.waitForAll()
        }
        #expect(gate.running == 0 && gate.waitingCount == 0)
    }

    @Test("a wait longer than the limit ends in reports-busy and leaves the count as it was")
    func busy() async throws {
        let gate = ReportGate(concurrency: 1, wait: .milliseconds(200))
        try await gate.acquire()
        let started = ContinuousClock.now
        do {
            try await gate.acquire()
            Issue.record("a second slot was given out")
        } catch let problem as Problem {
            #expect(problem.kind == .reportsBusy)
            #expect(problem.headers[.retryAfter] == "5")
            #expect(problem.status == .serviceUnavailable)
        }
        #expect(ContinuousClock.now - started >= .milliseconds(200))
        #expect(gate.running == 1 && gate.waitingCount == 0)
        gate.release()
        try await gate.withSlot { #expect(gate.running == 1) }
        #expect(gate.running == 0)
    }

    @Test("a cancelled wait leaves the line and gets no slot")
    func cancelled() async throws {
        let gate = ReportGate(concurrency: 1, wait: .seconds(60))
        try await gate.acquire()
        let waiting = Task { try await gate.acquire() }
        try await Self.untilWaiting(gate, 1)
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(gate.waitingCount == 0)
        gate.release()
        #expect(gate.running == 0)
    }

    static func untilWaiting(_ gate: ReportGate, _ count: Int) async throws {
        for _ in 0..<2_000 where gate.waitingCount < count { try await Task.sleep(for: .milliseconds(5)) }
        #expect(gate.waitingCount == count)
    }
}

/// What arrived, in order, from any task.
private final class Arrivals: Sendable {
    private let list = Mutex<[Int]>([])
    func add(_ value: Int) { list.withLock { $0.append(value) } }
    var all: [Int] { list.withLock { $0 } }
}
