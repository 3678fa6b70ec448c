import Logging
import PostgresNIO
import _ConnectionPoolModule
import Prometheus
import Synchronization

/// The service's handle on PostgreSQL: a connection pool (renewed after an outage) plus the two ways
/// to use it.
///
/// Stores take a `PostgresConnection` rather than the pool, so one use case can compose several of them
/// inside a single `withTransaction`.
public struct Database: Sendable {
    /// The service to run beside everything that uses this database.
    public let client: RenewablePool
    let logger: Logger
    let metrics: PoolMetrics?
    /// How long a caller waits for a pooled connection before the database counts as unavailable
    /// (`MADOGUCHI_DB_WAIT_SECONDS` for the server): during an outage the pool retries connecting
    /// quietly, and a request would otherwise wait for as long as that lasts.
    let leaseTimeout: Duration
    /// Announces committed events to followers everywhere (see `EventAnnouncer`).
    let announcer = EventAnnouncer()
    /// When a lease last ended with its work done: the database answered then.
    private let lastAnswered = LastAnswered()

    /// The most connections the pool opens.
    let maximumConnections: Int

    /// Busy, not broken: every connection is leased to work, and some lease's work was done within
    /// `interval`, so the database answers. (With the database gone, connections fail and leases end:
    /// the pool is not full of them.)
    func isBusyButAnswering(within interval: Duration) -> Bool {
        client.leasedNow.load(ordering: .relaxed) >= maximumConnections
            && lastAnswered.instant.withLock { $0.map { ContinuousClock.now - $0 <= interval } ?? false }
    }

    private final class LastAnswered: Sendable {
        let instant = Mutex<ContinuousClock.Instant?>(nil)
    }

    /// `cancelGrace`: how long a cancelled pool lets leases held at that moment finish (`RenewablePool`).
    public init(configuration: PostgresClient.Configuration, logger: Logger, registry: PrometheusCollectorRegistry? = nil,
                leaseTimeout: Duration = .seconds(600), cancelGrace: Duration = .seconds(5)) {
        // No startup parameters beyond PostgresNIO's own: PgBouncer closes a connection that sends one
        // it does not track. (JIT is off for our sessions by a role setting, migration 0054.)
        self.client = RenewablePool(configuration: configuration, logger: logger, cancelGrace: cancelGrace)
        self.logger = logger
        self.metrics = registry.map { PoolMetrics(registry: $0, maximum: configuration.options.maximumConnections) }
        self.maximumConnections = configuration.options.maximumConnections
        self.leaseTimeout = leaseTimeout
    }

    /// Leases a connection for `body`. The connection must not escape the closure. With no connection
    /// within `leaseTimeout` it throws `DatabaseUnavailable` (a 503 with `Retry-After` to HTTP callers);
    /// once leased, `body` takes as long as it takes.
    public func withConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        // Events written on this lease are announced once it is done: by then they are committed
        // (a transaction commits inside its lease; a single statement commits as it returns).
        let writes = EventWrites()
        let result = try await EventWrites.$current.withValue(writes) { try await leasedConnection(body) }
        if writes.happened { announcer.announce(on: self) }
        return result
    }

    private func leasedConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        let requested = ContinuousClock.now
        let leased = LeaseFlag()
        let (pool, metrics, limit) = (client, metrics, leaseTimeout)
        do {
            return try await lease(from: pool, metrics: metrics, limit: limit, requested: requested, leased: leased) { connection in
                pool.leasedNow.add(1, ordering: .relaxed)
                defer { pool.leasedNow.subtract(1, ordering: .relaxed) }
                let result = try await body(connection)
                lastAnswered.instant.withLock { $0 = .now }
                return result
            }
        } catch let error where !leased.isSet
            && (error is DatabaseUnavailable || (error as? ConnectionPoolError) == .connectionCreationCircuitBreakerTripped) {
            // No connection at all: perhaps the pool is still backing off from an outage that is over.
            // (Not a cancelled request: that says nothing about the pool.)
            pool.connectionFailed()
            throw error
        }
    }

    private func lease<Result: Sendable>(
        from pool: RenewablePool, metrics: PoolMetrics?, limit: Duration, requested: ContinuousClock.Instant, leased: LeaseFlag,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withoutActuallyEscaping(body) { body in
            // Runs in a child task while this one waits for it: never concurrently with the caller.
            nonisolated(unsafe) let body = body
            return try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask {
                    try await pool.current().withConnection { connection in
                        leased.set()
                        metrics?.leased(after: ContinuousClock.now - requested)
                        defer { metrics?.returned() }
                        return try await body(connection)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    guard leased.isSet else { throw DatabaseUnavailable(waited: limit) }
                    return nil
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw CancellationError()
            }
        }
    }

    /// How many times a transaction runs when PostgreSQL rolls it back for a deadlock or a
    /// serialization failure, before the error goes to the caller.
    static let transactionAttempts = 3

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    ///
    /// Unlike PostgresNIO's own helper, the closure's error is rethrown as it was thrown, so a domain
    /// `Problem` raised inside a transaction still reaches the client as that problem. A transaction
    /// PostgreSQL rolled back as a deadlock victim (or for a serialization failure) is run again, up
    /// to `transactionAttempts` times, after a short random pause: `body` must only work through
    /// `connection`, as every caller's does.
    public func withTransaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await transaction(body)
            } catch let error where (error.sqlState?.isTransient ?? false) && attempt < Self.transactionAttempts {
                logger.notice("transaction rolled back by PostgreSQL; running it again", metadata: [
                    "sqlstate": "\(error.sqlState?.rawValue ?? "-")", "attempt": "\(attempt)",
                ])
                try await Task.sleep(for: .milliseconds(Int.random(in: 5...50) * attempt))
                attempt += 1
            }
        }
    }

    private func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await withConnection { connection in
            try await connection.perform("BEGIN", logger: logger)
            let result: Result
            do {
                // The transaction's events are written together at its end (EventBatch).
                let events = EventBatch(for: connection)
                defer { events.close() }
                result = try await EventBatch.$current.withValue(events) {
                    let result = try await body(connection)
                    try await EventStore(logger: logger).writeHeldBack(on: connection)
                    return result
                }
            } catch {
                do {
                    try await connection.perform("ROLLBACK", logger: logger)
                } catch let rollbackError {
                    logger.warning("rollback failed", metadata: ["error": "\(String(reflecting: rollbackError))"])
                }
                throw error
            }
            try await connection.commit(logger: logger)
            return result
        }
    }
}

extension Database {
    /// Fails within `timeout` (`MADOGUCHI_DB_START_WAIT_SECONDS` at start) when no connection can be
    /// made, instead of leaving the pool to retry quietly (a wrong host, password or `sslmode` would
    /// otherwise surface only as a hang).
    ///
    /// A lease gives up sooner (`MADOGUCHI_DB_WAIT_SECONDS`, 5 s): until the start's own limit, a lease
    /// that found no connection is asked for again. Given up at the first, a database a few seconds
    /// late (both hosts rebooting) failed every start, and systemd's start limit stopped the service
    /// for good.
    public func checkReachable(timeout: Duration, describing target: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let unreachable = { @Sendable in DatabaseUnreachable(description: "PostgreSQL at \(target) did not accept a connection within \(timeout)") }
        while ContinuousClock.now < deadline {
            do {
                _ = try await withDeadline(ContinuousClock.now.duration(to: deadline), orThrow: unreachable) {
                    try await withConnection { connection -> Bool in
                        try await connection.perform("SELECT 1", logger: logger)
                        return true
                    }
                }
                return
            } catch is DatabaseUnavailable {
                continue
            } catch let error as ConnectionPoolError where error == .connectionCreationCircuitBreakerTripped {
                // The pool stops trying after a minute of failures; it is renewed (`RenewablePool`)
                // on the next lease. A pause, so that the loop does not spin meanwhile.
                try? await Task.sleep(for: .seconds(1))
                continue
            } catch let error as DatabaseUnreachable {
                throw error
            } catch {
                throw DatabaseUnreachable(description: "cannot use PostgreSQL at \(target): \(Migrator.describe(error))")
            }
        }
        throw unreachable()
    }
}

public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public let description: String
}

/// No pooled connection within the lease timeout: PostgreSQL is down, unreachable or saturated.
public struct DatabaseUnavailable: Error, CustomStringConvertible {
    public let waited: Duration
    public var description: String { "no database connection within \(waited)" }
}

/// Set once the pool has handed over a connection.
final class LeaseFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// How busy the pool is: connections in use against the maximum, and how long callers wait for one.
struct PoolMetrics: Sendable {
    let inUse: Gauge
    let wait: DurationHistogram

    init(registry: PrometheusCollectorRegistry, maximum: Int) {
        inUse = registry.makeGauge(descriptor: .init(
            namespace: "madoguchi", subsystem: "db", metricName: "connections_in_use", unitName: "",
            helpText: "Pooled PostgreSQL connections currently leased."))
        registry.makeGauge(descriptor: .init(
            namespace: "madoguchi", subsystem: "db", metricName: "connections_max", unitName: "",
            helpText: "The pool's connection limit (MADOGUCHI_DB_POOL_SIZE).")).set(Double(maximum))
        wait = registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "madoguchi", subsystem: "db", metricName: "connection_wait", unitName: "seconds",
                helpText: "Time spent waiting for a pooled connection."),
            labels: [],
            buckets: [.microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)]
        )
    }

    func leased(after waiting: Duration) {
        inUse.increment()
        wait.record(waiting)
    }

    func returned() { inUse.decrement() }
}
