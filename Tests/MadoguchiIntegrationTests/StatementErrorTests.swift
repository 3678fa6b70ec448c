import Logging
import PostgresNIO
import Testing
@testable import Madoguchi

/// PostgresNIO hands a statement's rows over as soon as PostgreSQL has described them; an error met
/// while the statement runs comes with the rows. `perform` reads them to the end, so such an error
/// is thrown where the statement was sent, and a transaction it aborted is not committed as if it
/// had succeeded (a COMMIT after it answers as a ROLLBACK would, without an error).
@Suite("Errors of statements whose rows nobody needs")
struct StatementErrorTests {
    /// Fails while it runs, after its rows were described: `x / 0` is not folded at planning.
    static let failsWhileRunning: PostgresQuery = "SELECT x / 0 FROM generate_series(0, 0) AS x"

    /// A database of its own with an empty table `kept (v int)`, for transactions to write to.
    static func withKeptTable(_ body: (Database) async throws -> Void) async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeDatabase()) { database in
            try await database.withConnection { connection in
                try await connection.perform("CREATE TABLE kept (v int)", logger: TestCluster.logger)
            }
            try await body(database)
        }
    }

    @Test("perform throws an error met while the statement runs")
    func performThrows() async throws {
        _ = try await TestCluster.withDatabase(try await TestCluster.makeDatabase()) { database in
            try await database.withConnection { connection in
                await #expect(throws: PSQLError.self) {
                    try await connection.perform(Self.failsWhileRunning, logger: TestCluster.logger)
                }
            }
        }
    }

    @Test("a transaction whose statement failed while running throws, and none of its writes are kept")
    func transactionThrows() async throws {
        try await Self.withKeptTable { (database: Database) async throws in
            await #expect(throws: PSQLError.self) {
                try await database.withTransaction { connection in
                    try await connection.perform("INSERT INTO kept VALUES (1)", logger: TestCluster.logger)
                    try await connection.perform(Self.failsWhileRunning, logger: TestCluster.logger)
                }
            }
            #expect(try await database.count("SELECT count(*) FROM kept") == 0)
        }
    }

    @Test("a transaction aborted by an error nobody read throws at its COMMIT instead of reporting success")
    func commitChecksTheTag() async throws {
        try await Self.withKeptTable { (database: Database) async throws in
            await #expect(throws: TransactionRolledBack.self) {
                try await database.withTransaction { connection in
                    try await connection.perform("INSERT INTO kept VALUES (1)", logger: TestCluster.logger)
                    // Rows nobody reads, as a call site that forgot `perform` would leave them.
                    _ = try await connection.run(Self.failsWhileRunning, logger: TestCluster.logger)
                }
            }
            #expect(try await database.count("SELECT count(*) FROM kept") == 0)
            // A transaction that went well still commits.
            try await database.withTransaction { connection in
                try await connection.perform("INSERT INTO kept VALUES (2)", logger: TestCluster.logger)
            }
            #expect(try await database.count("SELECT count(*) FROM kept") == 1)
        }
    }
}
