import Foundation
import Synchronization
import Testing

/// The whole test run's last resort. Each test has a time limit, but a limit only cancels its
/// test's task, and a task suspended on something that never resumes it stays there: the run then
/// never ends, and CI gives up after 90 minutes with no word of which test it was. Past
/// `MADOGUCHI_TEST_RUN_LIMIT_SECONDS` (default 30 minutes; a full run takes 2–5) this names every
/// test still inside `TestApp.run`, with how long it has been there, on stderr, which is not
/// buffered, and ends the process with status 1. The exit handlers still stop the clusters.
enum RunWatchdog {
    private static let limit = TimeInterval(ProcessInfo.processInfo.environment["MADOGUCHI_TEST_RUN_LIMIT_SECONDS"].flatMap(Int.init) ?? 1800)
    private static let running = Mutex<[Int: (name: String, since: Date)]>([:])
    private static let nextID = Atomic<Int>(0)

    private static let armed: Void = {
        Thread {
            Thread.sleep(forTimeInterval: limit)
            let stuck = running.withLock { $0.values.sorted { $0.since < $1.since } }
            var message = "madoguchi tests: the run is still going after \(Int(limit)) s; ending it. Still inside TestApp.run:\n"
            for entry in stuck { message += "  \(entry.name) (for \(Int(-entry.since.timeIntervalSinceNow)) s)\n" }
            FileHandle.standardError.write(Data(message.utf8))
            exit(1)
        }.start()
    }()

    /// Runs `body` noted under the current test's name until it returns.
    static func noting<Result>(_ body: () async throws -> Result) async throws -> Result {
        _ = armed
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let name = Test.current.map { $0.displayName ?? $0.name } ?? "a test"
        running.withLock { $0[id] = (name, Date()) }
        defer { running.withLock { _ = $0.removeValue(forKey: id) } }
        return try await body()
    }
}
