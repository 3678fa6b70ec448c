import Foundation
import Testing
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start for real (the SMTP sink, `madoguchi worker`), its output in a file.
struct ChildProcess: Sendable {
    let pid: pid_t
    let log: String

    /// Starts `executable` with this process's environment, `environment` added and `removing` left out.
    static func start(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], removing: Set<String> = [], log: String
    ) throws -> ChildProcess {
        var merged = testEnvironment(ProcessInfo.processInfo.environment.filter { !removing.contains($0.key) })
        merged.merge(environment) { _, new in new }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        ProcessRunner.closeInheritedDescriptors(&actions)  // none of the test process's sockets
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard status == 0 else { throw EmbeddedPostgresError("cannot start \(executable): \(String(cString: strerror(status)))") }
        return ChildProcess(pid: pid, log: log)
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    var isRunning: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// Sends `signal` and waits (at most 30 s) for the process to end.
    func stop(_ signal: Int32 = SIGTERM) async {
        kill(pid, signal)
        for _ in 0..<300 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGKILL)
        await exit()
    }

    /// Waits for the process to end and returns its wait status, polling instead of blocking: a
    /// blocking `waitpid` on Swift's cooperative pool (a thread per core) stalls every server this
    /// test process runs. A process still there after `limit` is a failure of the test, with the end
    /// of its log, and is killed: a hang must not hold the whole run until CI gives up on it.
    @discardableResult
    func exit(within limit: Duration = .seconds(300)) async -> Int32 {
        let start = ContinuousClock.now
        var killed = false
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result < 0 && errno != EINTR) { return status }
            if !killed && ContinuousClock.now - start > limit {
                killed = true
                Issue.record("process \(pid) did not end within \(limit); killed. The end of its log:\n\(output.suffix(4000))")
                kill(pid, SIGKILL)
            } else if !killed && Task.isCancelled {
                // The test was cancelled (its time limit): the sleep below no longer waits, so end it now.
                killed = true
                kill(pid, SIGKILL)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Polls until `condition` holds (at most `timeout`); false if it never did.
    static func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// Runs `command` to its end and returns its output, on a thread of its own: `spawnAndWait` blocks
    /// its thread, and blocking the cooperative pool (a thread per core) stalls every server this test
    /// process runs, and every timer, the time limits' included.
    static func run(_ command: [String]) async throws -> ProcessRunner.Result {
        let environment = Self.testEnvironment(ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        return try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try ProcessRunner.spawnAndWait(command, environment: environment) }) }.start()
        }
    }

    /// As TestApp: at the peak of a full run a command may wait long for its first connection (a CI
    /// run saw `keys list` give up after the default 10 s on the shared cluster).
    static func testEnvironment(_ environment: [String: String]) -> [String: String] {
        var environment = environment
        if environment["MADOGUCHI_DB_START_WAIT_SECONDS"] == nil { environment["MADOGUCHI_DB_START_WAIT_SECONDS"] = "120" }
        return environment
    }
}
