import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// The private cluster `madoguchi serve` runs when no DATABASE_URL is given. Each test makes its own
/// cluster (initdb takes well under a second) and removes it afterwards.
@Suite("Embedded PostgreSQL", .timeLimit(.minutes(15)))
struct EmbeddedPostgresTests {
    static func withCluster(_ body: (EmbeddedPostgres) async throws -> Void) async throws {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-embedded")
        let cluster = try EmbeddedPostgres(directory: directory, settings: ["fsync": "off"], logger: TestCluster.logger)
        do {
            try await body(cluster)
        } catch {
            TestCluster.stopNow(cluster)
            throw error
        }
        TestCluster.stopNow(cluster)
    }

    static func answers(_ cluster: EmbeddedPostgres) async throws -> Bool {
        try await cluster.withAdminConnection { connection in
            let rows = try await connection.query("SELECT 1", logger: TestCluster.logger)
            for try await one in rows.decode(Int.self) { return one == 1 }
            return false
        }
    }

    static func postmasterPID(_ cluster: EmbeddedPostgres) throws -> pid_t {
        let contents = try String(contentsOfFile: cluster.clusterDirectory + "/postmaster.pid", encoding: .utf8)
        return try #require(pid_t(contents.split(separator: "\n")[0]))
    }

    @Test("first start creates the cluster; a second start finds it running; stop and start again reuse it")
    func lifecycle() async throws {
        try await Self.withCluster { cluster in
            #expect(try await cluster.start() == .started)
            #expect(FileManager.default.fileExists(atPath: cluster.clusterDirectory + "/PG_VERSION"))
            #expect(FileManager.default.fileExists(atPath: cluster.socketDirectory + "/.s.PGSQL.5432"))
            try await cluster.createDatabase("madoguchi")
            try await cluster.createDatabase("madoguchi")  // idempotent
            #expect(try await cluster.start() == .alreadyRunning)
            try await cluster.stop()
            #expect(try await cluster.start() == .started)
            #expect(try await Self.answers(cluster))
        }
    }

    @Test("an initdb killed part-way leaves no cluster: the next start makes it afresh, and an empty directory is replaced")
    func interruptedInitdb() async throws {
        try await Self.withCluster { cluster in
            // What initdb killed after PG_VERSION leaves, in the place it now builds in.
            let building = cluster.clusterDirectory + ".initdb"
            try FileManager.default.createDirectory(atPath: building + "/global", withIntermediateDirectories: true)
            try "15\n".write(toFile: building + "/PG_VERSION", atomically: true, encoding: .utf8)
            // And an empty cluster directory, as made by hand or by an older version before its initdb.
            try FileManager.default.createDirectory(atPath: cluster.clusterDirectory, withIntermediateDirectories: true)
            #expect(try await cluster.start() == .started)
            #expect(try await Self.answers(cluster))
            #expect(!FileManager.default.fileExists(atPath: building))
            #expect(FileManager.default.fileExists(atPath: cluster.clusterDirectory + "/global/pg_control"))
        }
    }

    @Test("a cluster killed with SIGKILL leaves a stale postmaster.pid; the next start recovers")
    func staleAfterKill() async throws {
        try await Self.withCluster { cluster in
            _ = try await cluster.start()
            let pid = try Self.postmasterPID(cluster)
            #expect(kill(pid, SIGKILL) == 0)
            // Wait for the postmaster to be gone (its children notice and exit on their own).
            for _ in 0..<100 where EmbeddedPostgres.processIsPostmaster(pid: pid, clusterDirectory: cluster.clusterDirectory) {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(FileManager.default.fileExists(atPath: cluster.clusterDirectory + "/postmaster.pid"))
            #expect(try await cluster.start() == .started)
            #expect(try await Self.answers(cluster))
        }
    }

    @Test("a postmaster.pid naming a live process that is not our server (a reused pid) is cleared")
    func reusedPID() async throws {
        try await Self.withCluster { cluster in
            _ = try await cluster.start()
            try await cluster.stop()
            // Our own pid: alive, and certainly not a postgres for this cluster.
            let fake = "\(getpid())\n\(cluster.clusterDirectory)\n1700000000\n5432\n\(cluster.socketDirectory)\n\n  5432001         0\nready   \n"
            try fake.write(toFile: cluster.clusterDirectory + "/postmaster.pid", atomically: true, encoding: .utf8)
            #expect(try await cluster.start() == .started)
            #expect(try await Self.answers(cluster))
        }
    }

    @Test("without PostgreSQL's programs the error says what to install")
    func missingBinaries() throws {
        let error = #expect(throws: EmbeddedPostgresError.self) {
            try EmbeddedPostgres.locateBinaries(path: "/nonexistent", debianRoot: "/nonexistent")
        }
        #expect(error?.description.contains("apt-get install postgresql-15") == true)
        #expect(error?.description.contains("MADOGUCHI_PG_BIN") == true)
    }

    @Test("an existing cluster's own PostgreSQL version is chosen over a newer one installed beside it")
    func clusterVersionFirst() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pg-versions-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for version in ["15", "17"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(version)/bin", withIntermediateDirectories: true)
            for program in ["initdb", "pg_ctl"] {
                #expect(FileManager.default.createFile(atPath: "\(root)/\(version)/bin/\(program)", contents: Data(), attributes: [.posixPermissions: 0o755]))
            }
        }
        #expect(try EmbeddedPostgres.locateBinaries(path: "", debianRoot: root) == "\(root)/17/bin")
        #expect(try EmbeddedPostgres.locateBinaries(path: "", debianRoot: root, clusterVersion: "15") == "\(root)/15/bin")
        #expect(try EmbeddedPostgres.locateBinaries(path: "", debianRoot: root, clusterVersion: "16") == "\(root)/17/bin", "not installed: the newest")
    }

    @Test("PostgreSQL's programs get no secret of ours and no libpq setting from the service's environment")
    func helperEnvironment() {
        let given = ["PATH": "/usr/bin", "LANG": "ja_JP.UTF-8", "MADOGUCHI_SMTP_URL": "smtp://u:secret@relay", "DATABASE_URL": "postgres://u:p@h/d",
                     "MADOGUCHI_LINE_CHANNEL_SECRETS": "s", "PGPORT": "5433", "PGDATA": "/elsewhere"]
        #expect(ProcessRunner.helperEnvironment(given) == ["PATH": "/usr/bin", "LANG": "ja_JP.UTF-8"])
    }

    @Test("a data directory too long for a Unix socket is refused up front")
    func socketPathTooLong() {
        #expect(throws: EmbeddedPostgresError.self) {
            try EmbeddedPostgres(directory: "/tmp/" + String(repeating: "x", count: 120), binDirectory: "/usr/bin", logger: TestCluster.logger)
        }
    }

    @Test("the provisioner owns the cluster while it holds the data-directory lock; a borrower leaves it running")
    func ownershipByLock() async throws {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-provision")
        // Whatever happens below, stop the cluster and remove its directory.
        defer { if let cluster = try? EmbeddedPostgres(directory: directory, logger: TestCluster.logger) { TestCluster.stopNow(cluster) } }
        var configuration = Configuration()
        configuration.dataDirectory = directory
        let owner = try await DatabaseProvisioner.provision(configuration, use: .own, logger: TestCluster.logger)
        let borrower = try await DatabaseProvisioner.provision(configuration, use: .borrowOrOwnBriefly, logger: TestCluster.logger)
        await borrower.release(logger: TestCluster.logger)
        let cluster = try #require(owner.cluster)
        #expect(try await Self.answers(cluster), "a borrower must not stop the owner's cluster")
        await owner.release(logger: TestCluster.logger)
        #expect(!FileManager.default.fileExists(atPath: cluster.clusterDirectory + "/postmaster.pid"), "the owner stops it")
    }

    @Test("a worker started before the server waits for it instead of taking the cluster, and the server still starts")
    func workerNeverOwns() async throws {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-provision")
        defer { if let cluster = try? EmbeddedPostgres(directory: directory, logger: TestCluster.logger) { TestCluster.stopNow(cluster) } }
        var configuration = Configuration()
        configuration.dataDirectory = directory
        let worker = Task { try await DatabaseProvisioner.provision(configuration, use: .borrow, logger: TestCluster.logger) }
        try await Task.sleep(for: .seconds(2))
        // Before, the worker owned the cluster by now and the server gave up after ten seconds.
        let server = try await DatabaseProvisioner.provision(configuration, use: .own, logger: TestCluster.logger)
        let borrowed = try await worker.value
        #expect(borrowed.lock == nil, "the worker borrows")
        await borrowed.release(logger: TestCluster.logger)
        let cluster = try #require(server.cluster)
        #expect(try await Self.answers(cluster), "the worker leaves the server's cluster running")
        await server.release(logger: TestCluster.logger)
    }
}

@Suite("An external PostgreSQL through DATABASE_URL", .timeLimit(.minutes(15)))
struct ExternalDatabaseTests {
    /// A cluster that also listens on a free loopback port, standing in for a database server elsewhere.
    /// A free port can be taken by another test between asking and binding: then another port.
    static func startTCPServer() async throws -> (EmbeddedPostgres, Int) {
        for attempt in 1...3 {
            let port = try ServeCommandTests.freePort()
            let server = try EmbeddedPostgres(
                directory: try TestCluster.makeTemporaryDirectory(prefix: "madoguchi-external"),
                settings: ["fsync": "off", "listen_addresses": "127.0.0.1", "port": String(port)],
                logger: TestCluster.logger)
            do {
                _ = try await server.start()
                return (server, port)
            } catch where attempt < 3 && "\(error)".contains("Address already in use") {
                continue
            }
        }
        throw EmbeddedPostgresError("unreachable")
    }

    @Test("TCP and Unix-socket URLs both reach the server, and nothing embedded is started")
    func tcpAndSocket() async throws {
        let (server, port) = try await Self.startTCPServer()
        defer { TestCluster.stopNow(server) }
        let directory = server.directory
        try await server.createDatabase("support")

        for url in [
            "postgres://postgres@127.0.0.1:\(port)/support?sslmode=disable",
            "postgres://postgres@127.0.0.1:\(port)/support",  // prefer: falls back to plain when the server has no TLS
            "postgresql:///support?host=\(server.socketDirectory)&port=\(port)&user=postgres",
        ] {
            var configuration = Configuration()
            configuration.databaseURL = url
            configuration.dataDirectory = directory + "/never-used"
            let provisioned = try await DatabaseProvisioner.provision(configuration, use: .own, logger: TestCluster.logger)
            #expect(provisioned.cluster == nil)
            let report = try await TestCluster.withDatabase(provisioned.clientConfiguration) { database in
                try await Migrator.bundled().migrate(database, logger: TestCluster.logger)
            }
            #expect(report.schemaVersion == (try Migrator.bundled()).latestVersion, "\(url)")
            await provisioned.release(logger: TestCluster.logger)
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/never-used"))
    }

    @Test("an unusable DATABASE_URL fails fast with a message naming the server, instead of hanging")
    func unreachable() async throws {
        let (server, port) = try await Self.startTCPServer()
        defer { TestCluster.stopNow(server) }
        // This server has no TLS, so sslmode=require cannot be met; and nothing listens on the other port.
        for url in ["postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=require", "postgres://postgres@127.0.0.1:\(try ServeCommandTests.freePort())/postgres"] {
            var configuration = Configuration()
            configuration.databaseURL = url
            let provisioned = try await DatabaseProvisioner.provision(configuration, use: .own, logger: TestCluster.logger)
            let started = ContinuousClock.now
            let error = await #expect(throws: DatabaseUnreachable.self) {
                try await TestCluster.withDatabase(provisioned.clientConfiguration) { database in
                    try await database.checkReachable(timeout: .seconds(3), describing: provisioned.target)
                }
            }
            #expect(error?.description.contains("127.0.0.1") == true, "\(String(describing: error))")
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }
}

extension EmbeddedPostgresTests {
    @Test("helper programs start with standard input, output and error only: none of our descriptors")
    func childrenInheritNoDescriptors() throws {
        // A descriptor without close-on-exec, as a socket made by plain socket(2) would be.
        let inheritable = open("/dev/null", O_RDONLY)
        #expect(inheritable > 2)
        defer { close(inheritable) }
        let listing = try ProcessRunner.spawnAndWait(["/bin/sh", "-c", "ls /proc/$$/fd"])
        let descriptors = Set(listing.output.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) })
        #expect(!descriptors.contains(inheritable), "\(listing.output)")
        #expect(descriptors.isSuperset(of: [0, 1, 2]), "\(listing.output)")
    }
}

