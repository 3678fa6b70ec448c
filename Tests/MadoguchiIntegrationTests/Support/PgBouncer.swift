import Foundation
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// Debian's PgBouncer on a loopback port in front of a test cluster, in session mode, as the RUNBOOK
/// tells operators to run it. As root it runs as the `postgres` user: PgBouncer refuses root.
struct PgBouncer {
    static let executable = "/usr/sbin/pgbouncer"

    let port: Int
    /// As root, `runuser`, which SIGKILL would take down without PgBouncer beneath it.
    let process: ChildProcess
    let pidFile: String

    /// `url(database:)` reaches `cluster`'s databases through it. A port taken between choosing and
    /// binding (other tests run alongside) means another try on another port.
    static func start(inFrontOf cluster: EmbeddedPostgres) async throws -> PgBouncer {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "pgbouncer")
        let account = geteuid() == 0 ? EmbeddedPostgres.account(named: EmbeddedPostgres.superuser) : nil
        for attempt in 1... {
            let port = try ServeCommandTests.freePort()
            let configuration = """
                [databases]
                * = host=\(cluster.socketDirectory) port=\(cluster.port)
                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = \(port)
                unix_socket_dir =
                auth_type = trust
                auth_file = \(directory)/users.txt
                pool_mode = session
                logfile = \(directory)/pgbouncer.log
                pidfile = \(directory)/pgbouncer.pid

                """
            try configuration.write(toFile: directory + "/pgbouncer.ini", atomically: true, encoding: .utf8)
            try "\"\(EmbeddedPostgres.superuser)\" \"\"\n".write(toFile: directory + "/users.txt", atomically: true, encoding: .utf8)
            if let account {
                for path in [directory, directory + "/pgbouncer.ini", directory + "/users.txt"] { _ = chown(path, account.uid, account.gid) }
            }
            let command = (account == nil ? [] : ["/usr/sbin/runuser", "-u", EmbeddedPostgres.superuser, "--"]) + [executable, directory + "/pgbouncer.ini"]
            let process = try ChildProcess.start(command[0], Array(command.dropFirst()), log: directory + "/stdout.log")
            let listening = try await ChildProcess.eventually(timeout: .seconds(20)) {
                let log = (try? String(contentsOfFile: directory + "/pgbouncer.log", encoding: .utf8)) ?? ""
                return log.contains("listening on 127.0.0.1:\(port)") || !process.isRunning
            }
            let bouncer = PgBouncer(port: port, process: process, pidFile: directory + "/pgbouncer.pid")
            if listening && process.isRunning { return bouncer }
            await bouncer.stop()
            let log = (try? String(contentsOfFile: directory + "/pgbouncer.log", encoding: .utf8)) ?? process.output
            if attempt < 3 && log.contains("Address already in use") { continue }
            throw EmbeddedPostgresError("pgbouncer did not start: \(log)")
        }
        fatalError("unreachable")
    }

    func url(database: String) -> String {
        "postgres://\(EmbeddedPostgres.superuser)@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    /// Kills PgBouncer at once, waiting for nothing: for a `defer`, so that a test that fails halfway
    /// leaves no PgBouncer running (CI left one so). The `runuser` that started it ends with it.
    func killNow() {
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGKILL)
        }
    }

    /// Stops PgBouncer itself (by its pid file), then whatever started it; returns whether PgBouncer
    /// is gone. SIGKILL: a throwaway pooler needs no grace, and SIGTERM did nothing to it here (it
    /// left one PgBouncer running after every test run).
    @discardableResult
    func stop() async -> Bool {
        var gone = true
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGKILL)
            gone = (try? await ChildProcess.eventually(timeout: .seconds(10)) { kill(pid, 0) != 0 }) ?? false
        }
        await process.stop()
        return gone
    }
}
