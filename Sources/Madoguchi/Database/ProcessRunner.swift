import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs a helper program (initdb, pg_ctl) to completion and captures what it printed.
///
/// Built on `posix_spawn` and `waitpid` rather than Foundation's `Process`, whose `waitUntilExit` was
/// seen here to wait forever for a child that had already exited.
package struct ProcessRunner: Sendable {
    private static let spawnLock = Mutex(())

    /// Set when running as root: PostgreSQL refuses to run as root, so its programs run as this user
    /// through `runuser`.
    let runAsUser: String?

    package struct Result: Sendable {
        package var status: Int32
        package var output: String
    }

    package func run(_ executable: String, _ arguments: [String]) async throws -> Result {
        let argv = runAsUser.map { ["/usr/sbin/runuser", "-u", $0, "--", executable] } ?? [executable]
        var environment = Self.helperEnvironment(ProcessInfo.processInfo.environment)
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

    /// The service's environment without what is ours (`MADOGUCHI_*`, `DATABASE_URL`: an SMTP
    /// password, provider tokens) and libpq's `PG*` settings: the postmaster these helpers start
    /// lives on, as the `postgres` user when we run as root, and its environment is readable in
    /// `/proc` by every process of that user; and a `PGPORT` there would move its socket away from
    /// the one the service dials.
    static func helperEnvironment(_ environment: [String: String]) -> [String: String] {
        environment.filter { name, _ in !name.hasPrefix("MADOGUCHI_") && !name.hasPrefix("PG") && name != "DATABASE_URL" }
    }

    /// Blocks the calling thread; for exit handlers and other places with no async context.
    static func spawnAndWait(_ command: [String], environment: [String] = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }) throws -> Result {
        let cArguments = command.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        // The pipe is close-on-exec, so that a child spawned by another call (a postmaster that lives on
        // after pg_ctl returns, say) cannot inherit it and keep this reader from ever seeing EOF. Glibc's
        // pipe2 is not visible from Swift, so the flag is set just after pipe(), under a lock that keeps
        // every other spawn of ours out of that window. dup2 onto the child's stdout and stderr clears
        // the flag there, where the pipe is wanted.
        let (pid, readEnd): (pid_t, Int32) = try spawnLock.withLock { _ in
            var pipeEnds: [Int32] = [0, 0]
            guard pipe(&pipeEnds) == 0 else { throw EmbeddedPostgresError("pipe failed: \(String(cString: strerror(errno)))") }
            let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
            _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
            Self.closeInheritedDescriptors(&actions)

            // A child inherits the signal mask of the thread that spawns it, and Dispatch's threads block
            // signals: pgbench then never sees the SIGALRM that ends a timed run. Start every child with
            // nothing blocked and every handler at its default.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var nothing = sigset_t()
            sigemptyset(&nothing)
            var everything = sigset_t()
            sigfillset(&everything)
            posix_spawnattr_setsigmask(&attributes, &nothing)
            posix_spawnattr_setsigdefault(&attributes, &everything)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

            var pid: pid_t = 0
            let spawnStatus = posix_spawn(&pid, command[0], &actions, &attributes, cArguments, cEnvironment)
            close(writeEnd)
            guard spawnStatus == 0 else {
                close(readEnd)
                throw EmbeddedPostgresError("cannot run \(command[0]): \(String(cString: strerror(spawnStatus)))")
            }
            return (pid, readEnd)
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

extension ProcessRunner {
    /// Has the child close every descriptor above standard error. Without it a postmaster started by
    /// `pg_ctl` keeps whatever the spawning process had open (the server's sockets, its listening
    /// port among them) and, in a busy process, starts with too few left: "insufficient file
    /// descriptors available to start server process".
    static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not
    /// export; nil on an older C library, where children inherit as before.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()
}
