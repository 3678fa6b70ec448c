import Logging
import Prometheus
import ServiceLifecycle

/// `madoguchi worker`: the outbox, webhook, auto-assignment, report-rollup and SLA clock reset workers without the
/// HTTP service, for running them in processes of their own. It never migrates: it waits for the
/// schema a server brings up. Stopped gracefully by SIGTERM or SIGINT after the deliveries in
/// progress finish.
public enum WorkerProcess {
    public static func run(_ configuration: Configuration, logger: Logger) async throws {
        let provisioned = try await DatabaseProvisioner.provision(configuration, use: .borrow, logger: logger)
        let database = Database(configuration: provisioned.clientConfiguration, logger: logger, registry: PrometheusCollectorRegistry(),
                                leaseTimeout: configuration.databaseWait)
        let migrator = try Migrator.bundled()
        // The group stops its services last to first: the notice, listed last, tells the outbox and
        // webhook workers to stop claiming at once, rather than after a report fold of minutes.
        let shutdownNotice = ShutdownNotice()
        let worker = OutboxWorker(
            database: database, migrator: migrator, settings: configuration.delivery, publicURL: configuration.providers.publicURL,
            shutdownNotice: shutdownNotice, logger: logger)
        let notifier = EventNotifier(database: database, logger: logger)
        let webhooks = WebhookWorker(database: database, migrator: migrator, logger: logger, settings: configuration.webhooks, notifier: notifier,
                                     shutdownNotice: shutdownNotice)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: NamedService("database pool", database.client, logger: logger)),
                .init(service: NamedService("event notifier", notifier, logger: logger)),
                .init(service: NamedService("outbox worker", worker, logger: logger), successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: NamedService("webhook worker", webhooks, logger: logger)),
                .init(service: NamedService("assignment worker", AssignmentWorker(database: database, migrator: migrator, logger: logger, notifier: notifier),
                                            logger: logger)),
                .init(service: NamedService("report rollup worker", ReportRollupWorker(database: database, migrator: migrator, logger: logger), logger: logger)),
                .init(service: NamedService("SLA clock reset worker", SLAClockResetWorker(database: database, migrator: migrator, logger: logger),
                                            logger: logger)),
                .init(service: ShutdownNoticeService(notice: shutdownNotice)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await provisioned.release(logger: logger)
            throw error
        }
        await provisioned.release(logger: logger)
    }
}
