import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import MadoguchiAPI
import OpenAPIHummingbird
import Prometheus
import ServiceLifecycle

/// Builds the HTTP application: one function for the binary and the tests.
///
/// Middleware order, outermost first: request id, access log and metrics; problem rendering; body
/// limits; then the generated routes, with authentication inside the OpenAPI layer — before any body
/// is buffered — and the gateway endpoints' raw bodies kept after it.
/// Migrations run after the database client starts and before the port opens.
public func buildApplication(
    configuration: Configuration,
    database: Database,
    migrator: Migrator,
    registry: PrometheusCollectorRegistry,
    logger: Logger,
    databaseDescription: String = "the configured database",
    servicesBeforeDatabase: [any Service] = [],
    onStartupFailure: @escaping @Sendable (any Error) -> Void = { _ in },
    shutdownNotice: ShutdownNotice = ShutdownNotice(),
    onServerRunning: @escaping @Sendable (any NIOCore.Channel) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    // HEAD wherever GET is (RFC 9110 §9.3.2): a monitor's `curl -I` on /health/ready was 405.
    let router = Router(context: MadoguchiRequestContext.self, options: .autoGenerateHeadEndpoints)
    let routes = RouteTable()
    router.add(middleware: ObservabilityMiddleware(metrics: HTTPMetrics(registry: registry), trustedProxies: configuration.http.trustedProxies))
    router.add(middleware: CORSMiddleware(origins: configuration.http.corsOrigins))
    router.add(middleware: ProblemMiddleware(routes: routes))
    router.add(middleware: BodyLimitMiddleware(
        budget: BodyBudget(bytes: configuration.http.bodyBudgetBytes),
        defaultLimit: configuration.maxBodyBytes,
        limitsByPath: ["/v1/inbound/email": configuration.maxEmailBytes, "/v1/inbound/webform": configuration.maxEmailBytes,
                       "/v1/inbound/chat": configuration.maxEmailBytes,
                       "/v1/replies/{reply_id}/attachments": max(configuration.maxBodyBytes, ReplyStore.attachmentRequestLimit)]))

    let notifier = EventNotifier(database: database, logger: logger)
    let assigner = AssignmentWorker(database: database, migrator: migrator, logger: logger, notifier: notifier)
    // Reports read a replica when one is configured: its own pool, run beside the primary's.
    var reportsDatabase = database
    var replicaServices: [any Service] = []
    if let url = configuration.reportsDatabaseURL {
        var replicaConfiguration = try DatabaseURL.configuration(from: url, variable: "MADOGUCHI_REPORTS_DATABASE_URL")
        replicaConfiguration.options.maximumConnections = configuration.databasePoolSize
        reportsDatabase = Database(configuration: replicaConfiguration, logger: logger, leaseTimeout: configuration.databaseWait)
        replicaServices = [NamedService("reports replica pool", reportsDatabase.client, logger: logger)]
    }
    let handler = APIHandler(
        database: database, reportsDatabase: reportsDatabase, migrator: migrator, registry: registry, baseLogger: logger, claimLease: configuration.claimLease,
        warningWords: configuration.warningWords, subjectThreadWindow: configuration.subjectThreadWindow,
        chatIdleGap: configuration.chatIdleGap, providers: configuration.providers, delivery: configuration.delivery,
        webhooks: configuration.webhooks, readinessTimeout: configuration.http.readinessTimeout, notifier: notifier,
        assignment: assigner.trigger,
        reportGate: ReportGate(concurrency: configuration.reportConcurrency ?? max(1, configuration.databasePoolSize / 4),
                               wait: configuration.databaseWait),
        reportTimeout: configuration.reportTimeout)
    try handler.registerHandlers(
        on: RecordingTransport(router: router, table: routes),
        configuration: ResponseEncoding.configuration,
        middlewares: [
            AuthMiddleware(database: database, keys: handler.keys, rateLimiter: RateLimiter(
                limits: configuration.http.rateLimits, providerLimit: configuration.http.providerRateLimit,
                wrongKeyLimit: configuration.http.wrongKeyRateLimit)),
            ContractValidation(contract: .bundled, limit: configuration.maxBodyBytes,
                               limitsByOperation: ["addReplyAttachment": max(configuration.maxBodyBytes, ReplyStore.attachmentRequestLimit)],
                               rawBodyOperations: ["ingestWebform", "ingestSms", "ingestChat"], rawBodyLimit: configuration.maxEmailBytes),
        ])

    var app = Application(
        router: router,
        server: .http1(configuration: .init(
            additionalChannelHandlers: [ConnectionDeadlines(
                requestTimeout: configuration.http.requestTimeout, keylessRequestTimeout: configuration.http.keylessRequestTimeout,
                writeTimeout: configuration.http.writeTimeout, logger: logger), UnreadableRequestAnswer(logger: logger)],
            idleTimeout: TimeAmount(configuration.http.idleTimeout))),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "Madoguchi",
            availableConnectionsDelegate: MaximumAvailableConnections(configuration.http.maxConnections, logger: logger)),
        services: servicesBeforeDatabase + [
            NamedService("database pool", database.client, logger: logger),
        ] + replicaServices + [
            NamedService("event notifier", notifier, logger: logger),
            NamedService("multi-part SMS sweeper", SmsPartsSweeper(parts: handler.smsParts, wait: configuration.smsPartWait), logger: logger),
            NamedService("refused webhook sweeper", RejectedPayloadSweeper(database: database, days: configuration.rejectedPayloadDays, logger: logger),
                         logger: logger),
            NamedService("assignment worker", assigner, logger: logger),
            NamedService("report rollup worker", ReportRollupWorker(database: database, migrator: migrator, logger: logger), logger: logger),
            NamedService("SLA clock reset worker", SLAClockResetWorker(database: database, migrator: migrator, logger: logger), logger: logger),
        ] + (configuration.delivery.runsInServe ? [
            NamedService("outbox worker", OutboxWorker(database: database, migrator: migrator, settings: configuration.delivery,
                                                       publicURL: configuration.providers.publicURL, shutdownNotice: shutdownNotice,
                                                       logger: logger), logger: logger),
        ] : []) + (configuration.webhooks.runsInServe ? [
            NamedService("webhook worker", WebhookWorker(database: database, migrator: migrator, logger: logger, settings: configuration.webhooks,
                                                         notifier: notifier, shutdownNotice: shutdownNotice), logger: logger),
        ] : []),
        onServerRunning: onServerRunning,
        logger: logger)
    app.beforeServerStarts {
        // Before anything listens: a wrong DATABASE_URL is a clear error, not a hang.
        let report: Migrator.Report
        do {
            try await database.checkReachable(timeout: configuration.databaseStartWait, describing: databaseDescription)
            report = try await migrator.migrate(database, logger: logger)
        } catch {
            onStartupFailure(error)
            throw error
        }
        logger.info("database ready", metadata: ["schema_version": "\(report.schemaVersion)", "applied": "\(report.applied)"])
        // Not needed to serve; a failure here only means the first report request reads them.
        _ = try? await database.withConnection { try await ReportStore.zoneNames(on: $0, logger: logger) }
    }
    return app
}
