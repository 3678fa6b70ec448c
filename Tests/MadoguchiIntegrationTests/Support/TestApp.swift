import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing
@testable import Madoguchi

/// One test's world: its own database cloned from the migrated template, and the real application
/// serving on a loopback port.
struct TestApp {
    let database: Database
    let client: any TestClientProtocol
    /// How another process reaches this test's database.
    let databaseURL: String

    /// Builds the application on a fresh database and runs `body` against it over real HTTP.
    /// `followsFeed`: on the cluster kept for event-feed tests (see `TestCluster.cluster(forFeed:)`).
    /// `checksEventPayloads`: afterwards, every event in the test's database must match its
    /// documented schema (`EventPayloadCheck`); off only for tests that write events by hand.
    static func run(
        followsFeed: Bool = false,
        checksEventPayloads: Bool = true,
        configure: (inout Configuration) -> Void = { _ in },
        _ body: @Sendable (TestApp) async throws -> Void
    ) async throws {
        try await RunWatchdog.noting {
            try await runNoted(followsFeed: followsFeed, checksEventPayloads: checksEventPayloads, configure: configure, body)
        }
    }

    private static func runNoted(
        followsFeed: Bool,
        checksEventPayloads: Bool,
        configure: (inout Configuration) -> Void,
        _ body: @Sendable (TestApp) async throws -> Void
    ) async throws {
        let (clientConfiguration, url): (PostgresClient.Configuration, String)
        do {
            (clientConfiguration, url) = try await TestCluster.makeNamedDatabase(forFeed: followsFeed)
        } catch let error as PSQLError {
            throw DatabaseFailure(description: "making the test database: " + String(reflecting: error))
        }
        var configuration = Configuration()
        configuration.port = 0
        // Off unless a test wants it: two hundred test servers polling for webhook endpoints they do
        // not have is load the tests that measure time should not carry.
        configuration.webhooks.runsInServe = false
        // HummingbirdTesting's `client` holds one connection for the whole test and cannot reconnect
        // when the server closes it, as real clients do; on a loaded machine a test can leave it idle
        // past the default 30 s. Tests of the idle timeout set their own.
        configuration.http.idleTimeout = .seconds(3600)
        // The same for readiness: a second is long for a probe, short for a debug build under this load.
        configuration.http.readinessTimeout = .seconds(120)
        // And for the first connection at start: at the peak of a full run, two hundred servers start
        // at once on two cores, and CI once waited out the default 10 s.
        configuration.databaseStartWait = .seconds(120)
        // Tests fire thousands of requests from one key; the limits have tests of their own.
        configuration.http.rateLimits = [:]
        configuration.http.providerRateLimit = nil
        configuration.http.wrongKeyRateLimit = nil
        configure(&configuration)
        // The pool the configuration asks for, as DatabaseProvisioner gives the service.
        var poolConfiguration = clientConfiguration
        poolConfiguration.options.maximumConnections = configuration.databasePoolSize
        let registry = PrometheusCollectorRegistry()
        let database = Database(configuration: poolConfiguration, logger: TestCluster.logger, registry: registry)
        let app = try buildApplication(
            configuration: configuration, database: database, migrator: try Migrator.bundled(), registry: registry,
            logger: TestCluster.logger)
        let failures = StartupFailures()
        do {
            try await StartupGuarded(base: app, failures: failures).test(.live) { client in
                try failures.check()
                try await body(TestApp(database: database, client: client, databaseURL: url))
                if checksEventPayloads { try await EventPayloadCheck.expectDocumented(in: database) }
                try failures.check()
            }
        } catch let error as PSQLError {
            // PSQLError's description hides the server's message; a failing test should show it.
            throw DatabaseFailure(description: String(reflecting: error))
        }
    }

    struct DatabaseFailure: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: - Requests

    @discardableResult
    func request(
        _ method: HTTPRequest.Method,
        _ uri: String,
        key: String? = nil,
        headers: HTTPFields = [:],
        json: String? = nil
    ) async throws -> TestClient.Response {
        var headers = headers
        if let key { headers[.authorization] = "Bearer \(key)" }
        var body: ByteBuffer?
        if let json {
            if headers[.contentType] == nil { headers[.contentType] = "application/json" }
            body = ByteBuffer(string: json)
        }
        return try await patiently(uri, method: method, headers: headers, body: body)
    }

    /// One request on a connection of its own, with the patient read timeout: the app's own client
    /// gives up after a fixed 20 s, which a loaded CI machine running two hundred tests at once has
    /// exceeded — a failure about time in tests that assert nothing about time.
    func patiently(_ uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestClient.Response {
        // As the app's own client does: Host is localhost (signature checks rebuild URLs from it).
        let request = TestClient.Request(uri, method: method, authority: "localhost", headers: headers, body: body)
        return try await TestClient.withClient(host: "localhost", port: try #require(client.port), configuration: Self.patient) {
            try await $0.execute(request)
        }
    }

    /// Posts every body at once, each on a connection of its own (as a gateway's independent retries
    /// arrive), with a long read timeout; the statuses in the order they came back.
    func postConcurrently(_ path: String, headers: HTTPFields, bodies: [ByteBuffer]) async throws -> [HTTPResponse.Status] {
        let port = try #require(client.port)
        return try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
            for body in bodies {
                group.addTask {
                    try await TestClient.withClient(host: "localhost", port: port, configuration: Self.patient) { client in
                        try await client.execute(.init(path, method: .post, headers: headers, body: body)).status
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    // MARK: - Seeding, in SQL

    /// A new key of `role` (with an agent behind it for agents and supervisors).
    func key(_ role: Role, name: String? = nil) async throws -> (secret: String, record: APIKeyRecord) {
        let (record, secret) = try await database.withTransaction { connection in
            try await APIKeyStore(logger: TestCluster.logger).create(name: name ?? "\(role.rawValue) key", role: role, agentID: nil, on: connection)
        }
        return (secret.text, record)
    }

    func keySecret(_ role: Role) async throws -> String {
        try await key(role).secret
    }

    /// Runs one SQL statement built with bind parameters, for seeding.
    func execute(_ query: PostgresQuery) async throws {
        try await database.withConnection { try await $0.query(query, logger: TestCluster.logger) }
    }

    /// Runs migration `file` (under sql/migrations) again, as the migrator runs it: its statements
    /// one after another (`Migrator.execute`), in one transaction. For a migration that changes
    /// data, tried on rows written the way the earlier code wrote them.
    func rerunMigration(_ file: String) async throws {
        let sql = try String(contentsOfFile: RepositoryFiles.path("sql/migrations/\(file)"), encoding: .utf8)
        try await database.withTransaction { try await Migrator.execute(script: sql, on: $0, logger: TestCluster.logger) }
    }

    /// Runs a query returning a single UUID (`… RETURNING id`).
    func insertReturningID(_ query: PostgresQuery) async throws -> UUID {
        try await database.withConnection { connection in
            let rows = try await connection.query(query, logger: TestCluster.logger)
            for try await id in rows.decode(UUID.self) { return id }
            throw EmbeddedPostgresError("no id returned")
        }
    }

    func customer(name: String = "山田 花子", email: String? = nil) async throws -> UUID {
        let id = try await insertReturningID("INSERT INTO customers (display_name) VALUES (\(name)) RETURNING id")
        if let email {
            try await execute("INSERT INTO customer_identities (customer_id, kind, value, raw_value) VALUES (\(id), 'email', \(email), \(email))")
        }
        return id
    }

    func ticket(customer: UUID, subject: String = "注文した商品が届かない", status: String = "new", assignee: UUID? = nil) async throws -> UUID {
        try await insertReturningID("""
            INSERT INTO tickets (customer_id, subject, status, channel, assignee_id)
            VALUES (\(customer), \(subject), \(status), 'email', \(assignee)) RETURNING id
            """)
    }

    func inboundMessage(ticket: UUID, customer: UUID, body: String, at offsetSeconds: Int = 0) async throws -> UUID {
        try await insertReturningID("""
            INSERT INTO messages (ticket_id, customer_id, direction, channel, body_text, created_at)
            VALUES (\(ticket), \(customer), 'inbound', 'email', \(body), now() + make_interval(secs => \(offsetSeconds)))
            RETURNING id
            """)
    }
}

/// A response from either of HummingbirdTesting's clients: the app's own, or a `TestClient` opened
/// with settings of our choosing (a longer read timeout, a connection per concurrent caller).
protocol HTTPTestResponse {
    var status: HTTPResponse.Status { get }
    var headers: HTTPFields { get }
    var bodyBuffer: ByteBuffer { get }
}

extension TestResponse: HTTPTestResponse {
    var bodyBuffer: ByteBuffer { body }
}

extension TestClient.Response: HTTPTestResponse {
    var bodyBuffer: ByteBuffer { body ?? ByteBuffer() }
}

extension HTTPTestResponse {
    var text: String { String(buffer: bodyBuffer) }

    /// The body as a JSON object (fails the test with a clear error when it is not one).
    var json: [String: Any] {
        get throws {
            guard let object = try JSONSerialization.jsonObject(with: Data(buffer: bodyBuffer)) as? [String: Any] else {
                throw EmbeddedPostgresError("response body is not a JSON object: \(text)")
            }
            return object
        }
    }
}

/// The application under test, with failures before its server listens kept instead of thrown.
///
/// HummingbirdTesting's live runner waits for the server's port before it looks at the service
/// group again: an error before the server listens (the database refusing a connection on a loaded
/// machine, a migration failing) or a service failing early would leave the test waiting forever,
/// and the whole run with it. Kept here, the error fails the test as its body begins (or ends), and
/// the server then shuts down as after any test.
struct StartupGuarded<Base: ApplicationProtocol>: ApplicationProtocol {
    typealias Responder = Base.Responder

    let base: Base
    let failures: StartupFailures

    var responder: Responder { get async throws { try await base.responder } }
    var server: HTTPServerBuilder { base.server }
    var eventLoopGroup: any EventLoopGroup { base.eventLoopGroup }
    var configuration: ApplicationConfiguration { base.configuration }
    var logger: Logger { base.logger }
    @Sendable func onServerRunning(_ channel: any NIOCore.Channel) async { await base.onServerRunning(channel) }

    var services: [any Service] {
        base.services.map { service in KeptFailure(base: service, failures: failures) }
    }

    var processesRunBeforeServerStart: [@Sendable () async throws -> Void] {
        base.processesRunBeforeServerStart.map { process in
            { [failures] in
                do { try await process() } catch { failures.keep(error, from: "before the server started") }
            }
        }
    }

    /// A service whose error is kept; it then waits for the shutdown like the services that are still running.
    struct KeptFailure: Service {
        let base: any Service
        let failures: StartupFailures

        func run() async throws {
            do {
                try await base.run()
            } catch {
                if Task.isCancelled { throw error }
                failures.keep(error, from: "\(type(of: base))")
                try? await gracefulShutdown()
            }
        }
    }
}

/// What went wrong while the application under test started or ran its services.
final class StartupFailures: Sendable {
    private let kept = Mutex<[String]>([])

    func keep(_ error: any Error, from place: String) {
        kept.withLock { $0.append("\(place): \(String(reflecting: error))") }
    }

    func check() throws {
        let failures = kept.withLock { $0 }
        guard failures.isEmpty else { throw TestApp.DatabaseFailure(description: "the application failed: " + failures.joined(separator: "; ")) }
    }
}
