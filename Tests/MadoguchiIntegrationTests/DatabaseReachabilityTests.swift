import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Waiting for the database at start")
struct DatabaseReachabilityTests {
    @Test("a start waits for its own limit, not a lease's shorter one, and then names the limit")
    func startWaitOutlastsTheLease() async throws {
        // A port nothing listens on: every lease gives up after its second.
        var configuration = PostgresClient.Configuration(host: "127.0.0.1", port: 1, username: "nobody", password: nil, database: "none", tls: .disable)
        configuration.options.connectTimeout = .seconds(1)
        let database = Database(configuration: configuration, logger: TestCluster.logger, leaseTimeout: .seconds(1))
        let started = ContinuousClock.now
        let error = await #expect(throws: DatabaseUnreachable.self) {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await database.client.run() }
                defer { group.cancelAll() }
                try await database.checkReachable(timeout: .seconds(4), describing: "127.0.0.1:1")
            }
        }
        #expect(ContinuousClock.now - started >= .seconds(3.5), "gave up with the lease, not the start")
        #expect(error?.description.contains("within 4") == true, "\(String(describing: error))")
    }
}
