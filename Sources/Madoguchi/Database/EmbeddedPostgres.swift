import Foundation
import Logging
import NIOPosix
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

public struct EmbeddedPostgresError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A private PostgreSQL cluster under a directory of ours, for running without `DATABASE_URL` and for
/// the test suite.
///
/// Layout: `pg/` is the cluster, `run/` holds its Unix socket (it listens on no TCP port), `log/` its
/// server log. As root, the cluster belongs to the `postgres` system user, since PostgreSQL refuses
/// to run as root.
public struct EmbeddedPostgres: Sendable {
    public let directory: String
    public let binDirectory: String
    /// Extra `-c name=value` server settings, such as `fsync=off` for throwaway test clusters.
    public var settings: [String: String]
    let logger: Logger
    package let runner: ProcessRunner

    public static let superuser = "postgres"

    public var clusterDirectory: String { directory + "/pg" }
    public var socketDirectory: String { directory + "/run" }
    public var logFile: String { directory + "/log/postgresql.log" }
    /// The port names the socket file (`.s.PGSQL.5432`); the server listens on TCP only if a
    /// `listen_addresses` setting asks for it.
    public var port: Int { settings["port"].flatMap(Int.init) ?? 5432 }
    public var socketPath: String { socketDirectory + "/.s.PGSQL.\(port)" }

    public init(directory: String, binDirectory: String? = nil, settings: [String: String] = [:], logger: Logger) throws {
        let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.directory = absolute
        // A cluster's own major version first: the newest installed (a postgresql-17 beside 15 after
        // an upgrade) refuses a data directory an older one made, and the service would never start.
        let clusterVersion = (try? String(contentsOfFile: absolute + "/pg/PG_VERSION", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        self.binDirectory = try binDirectory ?? Self.locateBinaries(clusterVersion: clusterVersion)
        self.settings = settings
        self.logger = logger
        self.runner = ProcessRunner(runAsUser: geteuid() == 0 ? Self.superuser : nil)
        // The kernel limits a socket path to 107 bytes; say so now rather than fail obscurely at start.
        guard socketPath.utf8.count < 104 else {
            throw EmbeddedPostgresError("the data directory path \(absolute) is too long for a Unix socket inside it (\(socketPath.utf8.count) bytes, at most 103); choose a shorter MADOGUCHI_DATA_DIR")
        }
    }

    /// `initdb` and `pg_ctl`: those of `clusterVersion` (an existing cluster's `PG_VERSION`) in
    /// `/usr/lib/postgresql/<version>/bin` (Debian's layout) when installed; else from PATH; else the
    /// newest `/usr/lib/postgresql/*/bin`.
    public static func locateBinaries(
        path: String = ProcessInfo.processInfo.environment["PATH"] ?? "",
        debianRoot: String = "/usr/lib/postgresql",
        clusterVersion: String? = nil
    ) throws -> String {
        let fileManager = FileManager.default
        let pathDirectories = path.split(separator: ":").map(String.init)
        let debianDirectories = ((try? fileManager.contentsOfDirectory(atPath: debianRoot)) ?? [])
            .compactMap { version in Int(version).map { ($0, "\(debianRoot)/\(version)/bin") } }
            .sorted { $0.0 > $1.0 }
            .map(\.1)
        let own = clusterVersion.flatMap(Int.init).map { ["\(debianRoot)/\($0)/bin"] } ?? []
        for candidate in own + pathDirectories + debianDirectories
        where fileManager.isExecutableFile(atPath: candidate + "/initdb") && fileManager.isExecutableFile(atPath: candidate + "/pg_ctl") {
            return candidate
        }
        throw EmbeddedPostgresError("""
            PostgreSQL's server programs (initdb, pg_ctl) were not found in PATH or /usr/lib/postgresql/*/bin. \
            Install them (Debian/Ubuntu: apt-get install postgresql-15), point MADOGUCHI_PG_BIN at their directory, \
            or set DATABASE_URL to use an existing server.
            """)
    }

    public enum StartOutcome: Sendable, Equatable {
        case started
        /// A server was already running on this cluster (left by a killed process, or owned by another one).
        case alreadyRunning
    }

    /// Creates the cluster on first use, clears a stale `postmaster.pid` left by a crash, and starts the
    /// server unless it already runs. Returns once it accepts connections.
    public func start() async throws -> StartOutcome {
        try prepareDirectories()
        if !FileManager.default.fileExists(atPath: clusterDirectory + "/PG_VERSION") {
            try await initialize()
        }
        if try await isRunning() {
            logger.info("embedded PostgreSQL already running", metadata: ["cluster": "\(clusterDirectory)"])
            return .alreadyRunning
        }
        removeStaleLockFiles()
        let result = try await runner.run(binDirectory + "/pg_ctl", [
            "start", "-D", clusterDirectory, "-l", logFile, "-w", "-t", "60", "-s", "-o", serverOptions,
        ])
        guard result.status == 0 else {
            throw EmbeddedPostgresError("PostgreSQL did not start (pg_ctl exit \(result.status)): \(result.output.trimmed)\n\(logTail())")
        }
        logger.info("embedded PostgreSQL started", metadata: ["cluster": "\(clusterDirectory)", "socket": "\(socketDirectory)"])
        return .started
    }

    /// Makes this cluster a streaming standby of `primary` (`pg_basebackup -R`: a copy of the primary
    /// that follows its WAL, read-only), unless it exists already; `start()` then runs it. For a
    /// reports replica on one machine, and for the tests of one.
    public func createStandby(of primary: EmbeddedPostgres) async throws {
        try prepareDirectories()
        guard !FileManager.default.fileExists(atPath: clusterDirectory + "/PG_VERSION") else { return }
        try FileManager.default.createDirectory(atPath: clusterDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let user = runner.runAsUser, let account = Self.account(named: user) { _ = chown(clusterDirectory, account.uid, account.gid) }
        let result = try await runner.run(program("pg_basebackup"), [
            "-h", primary.socketDirectory, "-p", String(primary.port), "-U", Self.superuser, "-D", clusterDirectory,
            "--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-password",
        ])
        guard result.status == 0 else {
            try? FileManager.default.removeItem(atPath: clusterDirectory)
            throw EmbeddedPostgresError("pg_basebackup failed (exit \(result.status)): \(result.output.trimmed)")
        }
    }

    /// The path of one of PostgreSQL's programs (pgbench, pg_dump …): beside `initdb`, or beside the
    /// file a symlinked `pg_ctl` points to (PATH may hold only links to a few of them).
    public func program(_ name: String) -> String {
        let beside = binDirectory + "/" + name
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let real = URL(fileURLWithPath: binDirectory + "/pg_ctl").resolvingSymlinksInPath().deletingLastPathComponent()
        return real.appendingPathComponent(name).path
    }

    /// A fast shutdown: open transactions are rolled back, nothing committed is lost.
    public func stop() async throws {
        let result = try await runner.run(binDirectory + "/pg_ctl", ["stop", "-D", clusterDirectory, "-m", "fast", "-w", "-t", "60", "-s"])
        guard result.status == 0 else {
            throw EmbeddedPostgresError("PostgreSQL did not stop cleanly (pg_ctl exit \(result.status)): \(result.output.trimmed)")
        }
        logger.info("embedded PostgreSQL stopped", metadata: ["cluster": "\(clusterDirectory)"])
    }

    /// How to reach a database of this cluster: the superuser over the private socket (trust
    /// authentication; only the socket's owner can open it).
    public func clientConfiguration(database: String) -> PostgresClient.Configuration {
        PostgresClient.Configuration(
            unixSocketPath: socketPath, username: Self.superuser, password: nil, database: database)
    }

    /// Creates `name` unless it exists, from `template` when given (a cheap file-level copy).
    public func createDatabase(_ name: String, template: String? = nil) async throws {
        try await withAdminConnection { connection in
            let rows = try await connection.run("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: logger)
            for try await _ in rows { return }
            // Identifiers cannot be bind parameters; quote them.
            var statement = "CREATE DATABASE \(Self.quoteIdentifier(name))"
            if let template { statement += " TEMPLATE \(Self.quoteIdentifier(template))" }
            do {
                try await connection.perform(PostgresQuery(unsafeSQL: statement), logger: logger)
            } catch where error.sqlState == .uniqueViolation || (error as? PSQLError)?.serverInfo?[.sqlState] == "42P04" {
                // Another process created it between our check and our CREATE: the goal is met.
            }
        }
    }

    /// Runs `body` on a single connection to the `postgres` maintenance database.
    public func withAdminConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        let connection = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(),
            configuration: .init(
                unixSocketPath: socketPath, username: Self.superuser, password: nil, database: "postgres"),
            id: 0,
            logger: logger
        )
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The uid and gid of a system user. `getpwnam_r`, not `getpwnam`: the latter returns shared
    /// static storage, and clusters starting in parallel (the test suite does) read each other's
    /// half-written entries, which once chowned a log directory to the wrong owner.
    static func account(named name: String) -> (uid: uid_t, gid: gid_t)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }

    /// A new, empty directory under /tmp (mode 0700; `start` opens it up for the cluster's owner).
    public static func makeTemporaryDirectory(prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else { throw EmbeddedPostgresError("mkdtemp failed: \(String(cString: strerror(errno)))") }
        return String(cString: path)
    }

    static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: - Steps

    private var serverOptions: String {
        // The port always said: left to the server, a PGPORT in the environment would name another
        // socket file than the one the service dials.
        var options = "-k '\(socketDirectory)' -c listen_addresses='' -c unix_socket_permissions=0700"
        if settings["port"] == nil { options += " -c port=\(port)" }
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) {
            options += " -c \(name)=\(value)"
        }
        return options
    }

    private func prepareDirectories() throws {
        let fileManager = FileManager.default
        // The top directory only needs to be traversable by the cluster's owner; the cluster itself is 0700.
        try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        for subdirectory in [socketDirectory, directory + "/log"] {
            try fileManager.createDirectory(atPath: subdirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        if let user = runner.runAsUser {
            guard let account = Self.account(named: user) else {
                throw EmbeddedPostgresError("running as root needs the '\(user)' system user to own the cluster; it does not exist (apt-get install postgresql-15 creates it)")
            }
            _ = chmod(directory, 0o711)
            for path in [socketDirectory, directory + "/log"] where chown(path, account.uid, account.gid) != 0 {
                throw EmbeddedPostgresError("cannot give \(path) to the \(user) user: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Makes the cluster with initdb in a directory beside it and moves it into place only once
    /// initdb has finished: a start stopped during a first start (`systemctl start` and `stop` in a
    /// row, a reboot) killed initdb after it had written `PG_VERSION`, and every later start took
    /// the half-made cluster for a real one, which PostgreSQL then refused to start.
    private func initialize() async throws {
        let fileManager = FileManager.default
        let building = clusterDirectory + ".initdb"
        // What an interrupted initdb left: never a cluster, always made again.
        try? fileManager.removeItem(atPath: building)
        try fileManager.createDirectory(atPath: building, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let user = runner.runAsUser, let account = Self.account(named: user) {
            _ = chown(building, account.uid, account.gid)
            // Every parent must be searchable by that user; a clone under a 0700 home directory is not.
            let probe = try await runner.run("/usr/bin/test", ["-w", building])
            guard probe.status == 0 else {
                try? fileManager.removeItem(atPath: building)
                throw EmbeddedPostgresError("""
                    the \(user) user cannot reach \(clusterDirectory): some parent directory is not searchable by other \
                    users (a home directory with mode 0700, for example). Set MADOGUCHI_DATA_DIR to a directory such as \
                    /var/lib/madoguchi, or run as an ordinary user.
                    """)
            }
        }
        logger.info("creating embedded PostgreSQL cluster", metadata: ["cluster": "\(clusterDirectory)"])
        let result = try await runner.run(binDirectory + "/initdb", [
            "-D", building, "-U", Self.superuser, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions",
        ])
        guard result.status == 0 else {
            try? fileManager.removeItem(atPath: building)
            throw EmbeddedPostgresError("initdb failed (exit \(result.status)): \(result.output.trimmed)")
        }
        // rename(2) replaces an empty directory (one made by hand, or by an older version) in one step.
        guard rename(building, clusterDirectory) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fileManager.removeItem(atPath: building)
            throw EmbeddedPostgresError("cannot move the new cluster into \(clusterDirectory): \(reason) (it holds files, but no PG_VERSION)")
        }
    }

    private func isRunning() async throws -> Bool {
        guard let pid = postmasterPID() else { return false }
        guard Self.processIsPostmaster(pid: pid, clusterDirectory: clusterDirectory) else { return false }
        let status = try await runner.run(binDirectory + "/pg_ctl", ["status", "-D", clusterDirectory])
        return status.status == 0
    }

    private func postmasterPID() -> Int32? {
        guard let contents = try? String(contentsOfFile: clusterDirectory + "/postmaster.pid", encoding: .utf8),
            let firstLine = contents.split(separator: "\n").first
        else { return nil }
        return Int32(firstLine.trimmingCharacters(in: .whitespaces))
    }

    /// True when `pid` is alive and is a postgres server for this very cluster. After a crash the pid in
    /// `postmaster.pid` may belong to an unrelated process by now, which PostgreSQL would take for a
    /// running server and refuse to start.
    static func processIsPostmaster(pid: Int32, clusterDirectory: String) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
            return true  // No /proc to ask: trust the liveness check.
        }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let program = arguments.first, program.hasSuffix("postgres") || program.hasSuffix("postmaster") else { return false }
        return arguments.contains(clusterDirectory)
    }

    /// Removes `postmaster.pid` and the socket lock when no live server owns them.
    private func removeStaleLockFiles() {
        let fileManager = FileManager.default
        let pidFile = clusterDirectory + "/postmaster.pid"
        if let pid = postmasterPID(), !Self.processIsPostmaster(pid: pid, clusterDirectory: clusterDirectory) {
            logger.warning("removing stale postmaster.pid left by a server that is no longer running", metadata: ["pid": "\(pid)"])
            try? fileManager.removeItem(atPath: pidFile)
        }
        let socketLock = socketPath + ".lock"
        if fileManager.fileExists(atPath: socketLock), !fileManager.fileExists(atPath: pidFile) {
            try? fileManager.removeItem(atPath: socketLock)
            try? fileManager.removeItem(atPath: socketPath)
        }
    }

    private func logTail() -> String {
        guard let log = try? String(contentsOfFile: logFile, encoding: .utf8) else { return "(no server log at \(logFile))" }
        return "Last lines of \(logFile):\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n")
    }
}
