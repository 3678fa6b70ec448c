import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a helper program (initdb, pg_ctl) to completion and captures what it printed.
///
/// Built on `posix_spawn` and `waitpid` rather than Foundation's `Process`, whose `waitUntilExit` was
/// seen here to wait forever for a child that had already exited.
struct ProcessRunner: Sendable {
    /// Set when running as root: PostgreSQL refuses to run as root, so its programs run as this user
    /// through `runuser`.
    let runAsUser: String?

    struct Result: Sendable {
        var status: Int32
        var output: String
    }

    func run(_ executable: String, _ arguments: [String]) async throws -> Result {
        let argv = runAsUser.map { ["/usr/sbin/runuser", "-u", $0, "--", executable] } ?? [executable]
        var environment = ProcessInfo.processInfo.environment
        // Keep the helpers' messages in English so that our error reports are readable and stable.
        environment["LC_MESSAGES"] = "C"
        let envp = environment.map { "\($0.key)=\($0.value)" }
        let command = argv + arguments
        return try await withCheckedThrowingContinuation { continuation in
            // Reading to the end and waiting block a thread; keep them off Swift's cooperative pool.
            DispatchQueue.global().async {
                continuation.resume(with: Swift.Result { try Self.spawnAndWait(command, environment: envp) })
            }
        }
    }

    private static func spawnAndWait(_ command: [String], environment: [String]) throws -> Result {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw EmbeddedPostgresError("pipe failed: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addclose(&actions, writeEnd)

        let cArguments = command.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawnStatus = posix_spawn(&pid, command[0], &actions, nil, cArguments, cEnvironment)
        close(writeEnd)
        guard spawnStatus == 0 else {
            close(readEnd)
            throw EmbeddedPostgresError("cannot run \(command[0]): \(String(cString: strerror(spawnStatus)))")
        }

        var output = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(readEnd, &buffer, buffer.count)
            if count > 0 { output += buffer[0..<count]; continue }
            if count < 0, errno == EINTR { continue }
            break
        }
        close(readEnd)

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, spelled out: the C macros are not imported into Swift.
        let exitCode = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Result(status: exitCode, output: String(decoding: output, as: UTF8.self))
    }
}
