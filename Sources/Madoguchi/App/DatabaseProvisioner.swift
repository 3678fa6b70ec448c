import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Where a command's database comes from: `DATABASE_URL`, or the embedded cluster under the data
/// directory, started if need be.
///
/// Whoever holds the data directory's lock owns the embedded cluster and stops it when done. A
/// `keys` or `migrate` command run beside a serving instance finds the lock taken and borrows the
/// running cluster without stopping it.
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

public enum DatabaseProvisioner {
    public static let embeddedDatabaseName = "madoguchi"

    /// - Parameter exclusive: true for `serve`, which must own the cluster; a second server on the
    ///   same data directory is refused rather than sharing it.
    public static func provision(_ configuration: Configuration, exclusive: Bool, logger: Logger) async throws -> ProvisionedDatabase {
        if let url = configuration.databaseURL {
            var clientConfiguration = try DatabaseURL.configuration(from: url)
            clientConfiguration.options.maximumConnections = configuration.databasePoolSize
            return ProvisionedDatabase(clientConfiguration: clientConfiguration, cluster: nil, lock: nil)
        }
        let cluster = try EmbeddedPostgres(
            directory: configuration.dataDirectory, binDirectory: configuration.postgresBinDirectory, logger: logger)
        try FileManager.default.createDirectory(atPath: cluster.directory, withIntermediateDirectories: true)
        let lockPath = cluster.directory + "/madoguchi.lock"

        var lock = try DataDirectoryLock.tryAcquire(path: lockPath)
        if lock == nil, exclusive {
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
            try await cluster.createDatabase(embeddedDatabaseName)
        } catch {
            if lock != nil { try? await cluster.stop() }
            throw EmbeddedPostgresError("the embedded PostgreSQL in \(cluster.directory) is not answering: \(error)")
        }
        var clientConfiguration = cluster.clientConfiguration(database: embeddedDatabaseName)
        clientConfiguration.options.maximumConnections = configuration.databasePoolSize
        return ProvisionedDatabase(clientConfiguration: clientConfiguration, cluster: cluster, lock: lock)
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
