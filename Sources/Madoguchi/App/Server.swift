import Hummingbird
import Logging
import Prometheus

/// `madoguchi serve`: provision the database, migrate, serve until SIGINT or SIGTERM, then stop in order
/// (stop accepting, finish in-flight requests, close the pool, stop the embedded cluster).
public enum Server {
    public static func run(_ configuration: Configuration, logger: Logger) async throws {
        let migrator = try Migrator.bundled()
        let provisioned = try await DatabaseProvisioner.provision(configuration, exclusive: true, logger: logger)
        let registry = PrometheusCollectorRegistry()
        let database = Database(configuration: provisioned.clientConfiguration, logger: logger, registry: registry,
                                leaseTimeout: configuration.databaseWait)
        let app: any ApplicationProtocol
        do {
            app = try buildApplication(
                configuration: configuration, database: database, migrator: migrator, registry: registry, logger: logger,
                databaseDescription: provisioned.target,
                servicesBeforeDatabase: [EmbeddedClusterService(provisioned: provisioned, logger: logger)])
        } catch {
            await provisioned.release(logger: logger)
            throw error
        }
        try await app.runService()
    }
}
