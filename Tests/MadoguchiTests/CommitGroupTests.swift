import Synchronization
import Testing
@testable import Madoguchi

@Suite("Group commit for the outbox's writes")
struct CommitGroupTests {
    /// Records each batch it is given; answers each request with its own value doubled, and fails a
    /// whole batch that holds a negative number.
    final class Writer: Sendable {
        let batches = Mutex<[[Int]]>([])

        func write(_ batch: [Int]) async -> [Result<Int, any Error>] {
            batches.withLock { $0.append(batch) }
            // Long enough for the other requests to queue behind this batch.
            try? await Task.sleep(for: .milliseconds(20))
            if batch.contains(where: { $0 < 0 }) { return batch.map { _ in .failure(Refused()) } }
            return batch.map { .success($0 * 2) }
        }
    }

    struct Refused: Error {}

    @Test("requests arriving while a batch is written share the next one, and each gets its own answer")
    func batching() async throws {
        let writer = Writer()
        let group = CommitGroup<Int, Int>(maximumBatch: 64) { await writer.write($0) }
        let answers = try await withThrowingTaskGroup(of: (Int, Int).self) { tasks in
            for value in 1...50 { tasks.addTask { (value, try await group.submit(value)) } }
            var answers: [Int: Int] = [:]
            for try await (value, answer) in tasks { answers[value] = answer }
            return answers
        }
        #expect(answers == Dictionary(uniqueKeysWithValues: (1...50).map { ($0, $0 * 2) }))
        let batches = writer.batches.withLock { $0 }
        #expect(batches.flatMap { $0 }.sorted() == Array(1...50), "every request written once")
        #expect(batches.count < 50, "some requests shared a write: \(batches.map(\.count))")
    }

    @Test("a batch is never larger than its limit; a failed batch fails only its own requests")
    func limitsAndFailures() async throws {
        let writer = Writer()
        let group = CommitGroup<Int, Int>(maximumBatch: 4) { await writer.write($0) }
        // The first request is written alone (it is being written before the others come); the next ten
        // queue behind it.
        let first = Task { try await group.submit(-1) }
        for _ in 0..<5_000 where writer.batches.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(1)) }
        let later = try await withThrowingTaskGroup(of: Int.self) { tasks in
            for value in 1...10 { tasks.addTask { try await group.submit(value) } }
            return try await tasks.reduce(into: []) { $0.append($1) }
        }
        await #expect(throws: Refused.self) { try await first.value }
        #expect(later.sorted() == (1...10).map { $0 * 2 })
        #expect(writer.batches.withLock { $0.allSatisfy { $0.count <= 4 } })
    }
}
