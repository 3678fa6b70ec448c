import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Where a command's database comes from: `DATABASE_URL`, or the embedded cluster under the data
/// directory, started if need be.
///
/// Whoever holds the data directory's lock owns the embedded cluster and stops it when done. A
/// `keys` or `migrate` command run beside a serving instance finds the lock taken and borrows the
/// running cluster without stopping it; run alone, it owns the cluster for as long as it runs. A
/// worker never owns it (see `EmbeddedClusterUse.borrow`).
public struct ProvisionedDatabase: Sendable {
    public let clientConfiguration: PostgresClient.Configuration
    /// Where the database is, for messages: the URL without its password, or the embedded cluster's socket.
    public var target: String {
        if let path = clientConfiguration.unixSocketPath { return "\(path) (database \(clientConfiguration.database ?? ""))" }
        return "\(clientConfiguration.host ?? "?"):\(clientConfiguration.port ?? 5432)/\(clientConfiguration.database ?? "") as \(clientConfiguration.username)"
    }
    let cluster: EmbeddedPostgres?
    let lock: DataDirectoryLock?

    /// Stops the embedded cluster if this process owns it. Safe to call more than once.
    public func release(logger: Logger) async {
        guard let lock else { return }
        if let cluster {
            do { try await cluster.stop() } catch { logger.error("\(error)") }
        }
        lock.release()
    }
}

/// How a command uses the embedded cluster when there is no `DATABASE_URL`.
public enum EmbeddedClusterUse: Sendable {
    /// `serve`: owns the cluster for as long as it runs; a second server on the same data directory
    /// is refused rather than sharing it.
    case own
    /// `migrate`, `keys`: borrows a server's cluster, or owns it for the moment the command runs.
    case borrowOrOwnBriefly
    /// `worker`: borrows a server's cluster and waits for one when none is running. A long-running
    /// worker that took the lock would keep every server off the data directory: started while the
    /// server was down (an upgrade, a crash), it owned the cluster and the server could never start.
    case borrow
}

public enum DatabaseProvisioner {
    public static let embeddedDatabaseName = "madoguchi"

    public static func provision(_ configuration: Configuration, use: EmbeddedClusterUse, logger: Logger) async throws -> ProvisionedDatabase {
        if let url = configuration.databaseURL {
            var clientConfiguration = try DatabaseURL.configuration(from: url)
            clientConfiguration.options.maximumConnections = configuration.databasePoolSize
            return ProvisionedDatabase(clientConfiguration: clientConfiguration, cluster: nil, lock: nil)
        }
        let cluster = try EmbeddedPostgres(
            directory: configuration.dataDirectory, binDirectory: configuration.postgresBinDirectory, logger: logger)
        try FileManager.default.createDirectory(atPath: cluster.directory, withIntermediateDirectories: true)
        let lockPath = cluster.directory + "/madoguchi.lock"

        if use == .borrow {
            try await waitForOwner(lockPath: lockPath, directory: cluster.directory, logger: logger)
        }
        var lock = use == .borrow ? nil : try DataDirectoryLock.tryAcquire(path: lockPath)
        if lock == nil, use == .own {
            // A short-lived command may hold it for a moment; a server holds it for good.
            for _ in 0..<20 where lock == nil {
                try await Task.sleep(for: .milliseconds(500))
                lock = try DataDirectoryLock.tryAcquire(path: lockPath)
            }
            guard lock != nil else {
                throw EmbeddedPostgresError("another madoguchi process is serving from \(cluster.directory); stop it, or give this one its own MADOGUCHI_DATA_DIR")
            }
        }
        if lock != nil {
            _ = try await cluster.start()
        } else {
            logger.info("using the embedded cluster of the madoguchi process that is serving", metadata: ["data_dir": "\(cluster.directory)"])
        }
        do {
            try await createDatabase(in: cluster, borrowing: lock == nil)
        } catch {
            if lock != nil { try? await cluster.stop() }
            throw EmbeddedPostgresError("the embedded PostgreSQL in \(cluster.directory) is not answering: \(error)")
        }
        var clientConfiguration = cluster.clientConfiguration(database: embeddedDatabaseName)
        clientConfiguration.options.maximumConnections = configuration.databasePoolSize
        return ProvisionedDatabase(clientConfiguration: clientConfiguration, cluster: cluster, lock: lock)
    }

    /// A borrower may arrive between a server taking the lock and its cluster answering (a first
    /// start runs initdb): it gives the cluster a minute.
    private static func createDatabase(in cluster: EmbeddedPostgres, borrowing: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(borrowing ? 60 : 0)
        while true {
            do {
                return try await cluster.createDatabase(embeddedDatabaseName)
            } catch where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Returns once another process holds the data directory's lock, that is, owns a running cluster.
    /// Probing takes the lock for an instant when it is free; a server starting in that instant
    /// retries for ten seconds, so it is never kept out.
    private static func waitForOwner(lockPath: String, directory: String, logger: Logger) async throws {
        var waitingSince: ContinuousClock.Instant?
        while let probe = try DataDirectoryLock.tryAcquire(path: lockPath) {
            probe.release()
            if waitingSince == nil {
                logger.notice("waiting for `madoguchi serve` to start the embedded cluster (or set DATABASE_URL)",
                              metadata: ["data_dir": "\(directory)"])
                waitingSince = .now
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        if let waitingSince {
            logger.info("a server started the embedded cluster", metadata: ["waited": "\(ContinuousClock.now - waitingSince)"])
        }
    }
}

/// Keeps the embedded cluster for as long as the service group runs, and stops it last: services stop
/// in reverse order, so the HTTP server and the pool are closed before PostgreSQL goes.
///
/// A group that fails (a migration refused at startup) cancels every service at once, this one with
/// the workers whose queries are in flight. So it waits for the pool to stop before it stops the
/// cluster: PostgreSQL closing a connection under a worker between two queries left the worker's next
/// query waiting forever (PostgresNIO 1.33.2), and the process with it.
struct EmbeddedClusterService: Service {
    let provisioned: ProvisionedDatabase
    let pool: RenewablePool
    let logger: Logger

    func run() async throws {
        // Returns on graceful shutdown; throws if cancelled. Either way the cluster is stopped.
        try? await gracefulShutdown()
        await pool.untilStopped(within: .seconds(15))
        await provisioned.release(logger: logger)
    }
}
