import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// `madoguchi serve`: provision the database, migrate, serve until SIGINT or SIGTERM, then stop in order
/// (stop accepting, finish in-flight requests, close the pool, stop the embedded cluster).
public enum Server {
    /// How long the services get to stop after a failed start before the process exits without them.
    static let stopAfterFailedStart: Duration = .seconds(30)

    public static func run(_ configuration: Configuration, logger: Logger) async throws {
        let migrator = try Migrator.bundled()
        let provisioned = try await DatabaseProvisioner.provision(configuration, use: .own, logger: logger)
        let registry = PrometheusCollectorRegistry()
        let database = Database(configuration: provisioned.clientConfiguration, logger: logger, registry: registry,
                                leaseTimeout: configuration.databaseWait)
        let (startupFailures, startupFailed) = AsyncStream<any Error>.makeStream()
        let app: any ApplicationProtocol
        let shutdownNotice = ShutdownNotice()
        do {
            app = try buildApplication(
                configuration: configuration, database: database, migrator: migrator, registry: registry, logger: logger,
                databaseDescription: provisioned.target,
                servicesBeforeDatabase: [NamedService("embedded PostgreSQL", EmbeddedClusterService(provisioned: provisioned, pool: database.client,
                                                                                                    logger: logger), logger: logger)],
                onStartupFailure: { startupFailed.yield($0) }, shutdownNotice: shutdownNotice)
        } catch {
            await provisioned.release(logger: logger)
            throw error
        }
        let lastResort = Task { await exitIfStuck(after: startupFailures, provisioned: provisioned, logger: logger) }
        defer { lastResort.cancel() }
        // As `app.runService()`, with the notice stopped first: the workers stop claiming at once,
        // while the HTTP server, stopped before them, lets its requests finish.
        try await ServiceGroup(configuration: .init(
            services: [app, ShutdownNoticeService(notice: shutdownNotice)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }

    /// The last resort after a failed start (a refused migration, an unreachable database): the
    /// service group then cancels every service and waits for all of them. Should one never finish
    /// (a library wait that ignores cancellation), an operator would see a server that neither serves
    /// nor exits; instead the process says why it could not start, stops its cluster and exits 1.
    private static func exitIfStuck(after startupFailures: AsyncStream<any Error>, provisioned: ProvisionedDatabase, logger: Logger) async {
        for await error in startupFailures {
            guard (try? await Task.sleep(for: stopAfterFailedStart)) != nil else { return }
            logger.critical("the services did not stop after the failed start; exiting without them",
                            metadata: ["waited": "\(stopAfterFailedStart)", "error": "\(String(reflecting: error))"])
            await provisioned.release(logger: logger)
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            exit(1)
        }
    }
}
