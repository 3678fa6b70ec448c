import Foundation
import Logging
import PostgresNIO
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// One throwaway PostgreSQL cluster for the whole test run, in a temporary directory, with a template
/// database migrated once. Every test clones its own database from the template (a file-level copy,
/// milliseconds), so tests run in parallel and never see each other's rows.
enum TestCluster {
    static let templateName = "madoguchi_template"

    static let logger: Logger = {
        var logger = Logger(label: "madoguchi.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["MADOGUCHI_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return logger
    }()

    /// Started on first use; later callers await the same start.
    private static let started = Task<EmbeddedPostgres, any Error> { try await start() }

    static var cluster: EmbeddedPostgres {
        get async throws { try await started.value }
    }

    /// A second cluster, for tests of the event feed. Before the feed's horizon learned to pass other
    /// databases' transactions (`EventFeed.horizon`), any other test's long transaction stalled them
    /// here; it is kept so that their timing does not depend on the load of a full run.
    private static let startedForFeed = Task<EmbeddedPostgres, any Error> { try await start() }

    static func cluster(forFeed: Bool) async throws -> EmbeddedPostgres {
        try await (forFeed ? startedForFeed : started).value
    }

    /// A fresh database cloned from the migrated template, named after nothing in particular.
    static func makeDatabase() async throws -> PostgresClient.Configuration {
        try await makeNamedDatabase().configuration
    }

    /// The same, with the `DATABASE_URL` another process (`madoguchi worker`) reaches it by.
    static func makeNamedDatabase(forFeed: Bool = false) async throws -> (configuration: PostgresClient.Configuration, url: String) {
        let cluster = try await cluster(forFeed: forFeed)
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        // A terminated session may take a moment to leave (55006, "being accessed by other users"),
        // and at the peak of a full run every connection slot may be taken for a moment (53300, "too
        // many clients already"; CI failed a test on it once): both pass, so wait and try again. So
        // does an admin connection not made within its 10 s while a full run's peak starves the
        // postmaster (twelve tests failed so once, on a machine shared with other work).
        for attempt in 1... {
            do {
                try await cluster.createDatabase(name, template: templateName)
                break
            } catch let error as PSQLError where (["55006", "53300"].contains(error.serverInfo?[.sqlState]) || error.code == .connectionError)
                && attempt < 300 {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let socketDirectory = cluster.socketDirectory.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cluster.socketDirectory
        return (cluster.clientConfiguration(database: name), "postgres://\(EmbeddedPostgres.superuser)@\(socketDirectory):\(cluster.port)/\(name)")
    }

    /// An empty database (no migrations at all), for testing the migrator itself.
    static func makeEmptyDatabase() async throws -> PostgresClient.Configuration {
        let cluster = try await cluster
        let name = "empty_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await cluster.createDatabase(name)
        return cluster.clientConfiguration(database: name)
    }

    private static func start() async throws -> EmbeddedPostgres {
        let directory = try makeTemporaryDirectory(prefix: "madoguchi-tests")
        let cluster = try EmbeddedPostgres(
            directory: directory,
            // Throwaway data: durability costs time and buys nothing here. Every test's server has a
            // pool of its own on this one cluster, and they run at once: a full run peaked at about
            // 1,060 PostgreSQL processes on this machine (at 1,000 connections, a server starting one
            // more worker took a late test past the limit), hence room to spare.
            settings: ["fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "2000"],
            logger: logger)
        stopAtExit(cluster)
        _ = try await cluster.start()
        try await cluster.createDatabase(templateName)
        try await withDatabase(cluster.clientConfiguration(database: templateName)) { database in
            try await Migrator.bundled().migrate(database, logger: logger)
        }
        try await sealTemplate(on: cluster)
        return cluster
    }

    /// Cloning needs the template to have no session at all (55006 otherwise). A closed pool's
    /// connections usually end within milliseconds, but a connection the pool was still opening when
    /// it shut down has been seen to linger for the whole run. So the template takes no new
    /// connections from here on, and whatever is still connected is ended.
    private static func sealTemplate(on cluster: EmbeddedPostgres) async throws {
        try await cluster.withAdminConnection { connection in
            let template = EmbeddedPostgres.quoteIdentifier(templateName)
            try await connection.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(template) WITH ALLOW_CONNECTIONS false"), logger: logger)
            try await connection.query("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = \(templateName) AND pid <> pg_backend_pid()
                """, logger: logger)
        }
    }

    /// Runs `body` with a pool on `configuration`, closed afterwards (a template must have no connections).
    static func withDatabase<Result: Sendable>(
        _ configuration: PostgresClient.Configuration,
        _ body: (Database) async throws -> Result
    ) async throws -> Result {
        let database = Database(configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.client.run() }
            defer { group.cancelAll() }
            return try await body(database)
        }
    }

    static func makeTemporaryDirectory(prefix: String) throws -> String {
        try EmbeddedPostgres.makeTemporaryDirectory(prefix: prefix)
    }

    // MARK: - Cleanup

    /// The test process exits through `exit`, which runs atexit handlers: stop the cluster and delete
    /// its directory there. A C handler captures nothing, hence the global.
    private static func stopAtExit(_ cluster: EmbeddedPostgres) {
        let first = clustersToStop.withLock { clusters in
            clusters.append(cluster)
            return clusters.count == 1
        }
        if first {
            atexit {
                for cluster in TestCluster.clustersToStop.withLock({ $0 }) { TestCluster.stopNow(cluster) }
            }
        }
        startWatchdog(cluster)
    }

    static func stopNow(_ cluster: EmbeddedPostgres) {
        let stop = [cluster.binDirectory + "/pg_ctl", "stop", "-D", cluster.clusterDirectory, "-m", "immediate", "-s"]
        let command = cluster.runner.runAsUser.map { ["/usr/sbin/runuser", "-u", $0, "--"] + stop } ?? stop
        _ = try? ProcessRunner.spawnAndWait(command)
        try? FileManager.default.removeItem(atPath: cluster.directory)
    }

    /// If the test process is killed outright, no exit handler runs; a detached shell waits for it to
    /// die and then stops the cluster, so no postgres outlives its test run.
    private static func startWatchdog(_ cluster: EmbeddedPostgres) {
        let pgCtl = cluster.runner.runAsUser.map { "/usr/sbin/runuser -u \($0) -- " } ?? ""
        let script = """
            exec </dev/null >/dev/null 2>&1
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            \(pgCtl)'\(cluster.binDirectory)/pg_ctl' stop -D '\(cluster.clusterDirectory)' -m immediate -s >/dev/null 2>&1
            rm -rf '\(cluster.directory)'
            """
        _ = try? ProcessRunner.spawnAndWait(["/usr/bin/setsid", "-f", "/bin/sh", "-c", script])
    }

    private static let clustersToStop = Mutex<[EmbeddedPostgres]>([])
}

import Synchronization
