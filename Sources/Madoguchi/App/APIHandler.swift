import Logging
import MadoguchiAPI
import Prometheus

/// Implements the generated `APIProtocol`. Each domain adds its operations in an extension
/// (`CustomersAPI.swift`, `TicketsAPI.swift`, …); handlers translate between HTTP and the domain,
/// and the stores and domain types decide.
struct APIHandler: APIProtocol {
    let database: Database
    /// Where reports read: a read replica (`MADOGUCHI_REPORTS_DATABASE_URL`), else `database`.
    let reportsDatabase: Database
    let migrator: Migrator
    let registry: PrometheusCollectorRegistry
    let baseLogger: Logger
    let claimLease: Duration
    let warningWords: [String]
    let subjectThreadWindow: Duration
    let chatIdleGap: Duration
    let providers: ProviderSettings
    let delivery: DeliverySettings
    let webhooks: WebhookSettings
    /// How long `/health/ready` may take to reach the database before it says 503.
    let readinessTimeout: Duration
    /// Wakes the feed's long polls and streams when events commit.
    let notifier: EventNotifier
    /// Wakes this process's auto-assignment when a queue is switched on.
    var assignment: AssignmentTrigger? = nil
    /// The reports' share of the database (`MADOGUCHI_REPORT_CONCURRENCY`).
    let reportGate: ReportGate
    /// How long one JSON report's statement may run (`MADOGUCHI_REPORT_TIMEOUT_SECONDS`).
    let reportTimeout: Duration
    /// Keys found valid in the last second, shared by authentication and revocation in this process.
    let keyCache = APIKeyCache()
    let readiness = ReadinessMemory()

    /// The request's logger (its lines carry the request id), or the service's outside a request.
    var logger: Logger { RequestScope.current?.logger ?? baseLogger }

    var keys: APIKeyStore { APIKeyStore(logger: logger, cache: keyCache) }
    var customers: CustomerStore { CustomerStore(logger: logger) }
    var tickets: TicketStore { TicketStore(logger: logger) }

    /// The principal `AuthMiddleware` authenticated for this request.
    var principal: Principal {
        get throws {
            guard let principal = RequestScope.current?.principal else {
                // Only reachable if an operation were public by mistake; fail closed.
                throw AuthMiddleware.unauthenticated("This operation needs an API key.", keyWasSent: false)
            }
            return principal
        }
    }
}
