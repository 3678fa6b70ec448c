import Foundation
import PostgresNIO
import Synchronization
import Testing
@testable import Madoguchi

/// The pool every service group runs (`RenewablePool`), stopped the way a failed group stops it:
/// cancelled together with the workers whose queries are in flight.
@Suite("The database pool", .timeLimit(.minutes(15)))
struct ConnectionPoolTests {
    @Test("cancelled while a lease is held, the pool lets that lease finish its queries before it closes the connection")
    func cancelledPoolWaitsForLeases() async throws {
        // A grace no loaded machine runs out of: in a loaded CI run the lease's half second of work
        // outlasted the 5 s default, and the connection was closed under it (as the grace says).
        let database = Database(configuration: try await TestCluster.makeDatabase(), logger: TestCluster.logger, cancelGrace: .seconds(60))
        let poolRun = Task { await database.client.run() }
        let (leased, signalLeased) = AsyncStream<Void>.makeStream()
        let work = Task {
            try await database.withConnection { connection in
                signalLeased.yield()
                try await Task.sleep(for: .milliseconds(300))
                var answered = 0
                for _ in 0..<3 {
                    try await connection.query("SELECT pg_sleep(0.05)", logger: TestCluster.logger)
                    answered += 1
                }
                return answered
            }
        }
        for await _ in leased { break }
        poolRun.cancel()
        // Before, the cancelled pool closed the leased connection at once: these queries failed, and
        // now and then one waited forever.
        // PSQLError's description hides its detail: a full run failed here twice, saying only "PSQLError".
        do {
            #expect(try await work.value == 3)
        } catch {
            Issue.record("the leased connection's work failed: \(String(reflecting: error))")
        }
        // And it stops once the lease is back. (A lease held past the 5 s grace has its connection
        // closed under it; a query then sent on it never answers in PostgresNIO 1.33.2, which is why
        // the grace exists, so no test here can wait for one.)
        await poolRun.value
    }

    @Test("a statement sent on a connection the server has closed fails at once instead of waiting forever")
    func statementAfterServerClose() async throws {
        let database = Database(configuration: try await TestCluster.makeDatabase(), logger: TestCluster.logger)
        let poolRun = Task { await database.client.run() }
        let (leased, signalLeased) = AsyncStream<Int32>.makeStream()
        let (terminated, signalTerminated) = AsyncStream<Void>.makeStream()
        // Unstructured and never cancelled: should the statement never answer, the test says so and
        // goes on rather than waiting with it.
        let work = Task {
            try await database.withConnection { connection in
                let rows = try await connection.query("SELECT pg_backend_pid()", logger: TestCluster.logger)
                for try await pid in rows.decode(Int32.self) { signalLeased.yield(pid) }
                for await _ in terminated { break }
                // Until the close has gone all the way through (PostgreSQL's message, then the socket).
                for _ in 0..<500 where !connection.isClosed { try? await Task.sleep(for: .milliseconds(10)) }
                try? await Task.sleep(for: .milliseconds(200))
                // Through the service's own entry point; PostgresNIO's `query` here never answers.
                try await connection.perform("SELECT 1", logger: TestCluster.logger)
            }
        }
        var pid: Int32 = 0
        for await leasedPid in leased { pid = leasedPid; break }
        try await database.withConnection { connection in
            try await connection.query("SELECT pg_terminate_backend(\(pid))", logger: TestCluster.logger)
        }
        signalTerminated.yield()
        let deadline = ContinuousClock.now + .seconds(30)
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        Task { let result = await work.result; outcome.withLock { $0 = result } }
        while outcome.withLock({ $0 == nil }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let result = outcome.withLock { $0 }
        #expect(result != nil, "the statement on the closed connection never answered")
        if case .success = result { Issue.record("the statement on a terminated connection succeeded") }
        if case .failure(let error) = result { #expect(error is ConnectionLost, "\(String(reflecting: error))") }
        guard result != nil else { return }  // the pool would wait for the lost lease forever
        poolRun.cancel()
        await poolRun.value
    }

    /// Sites of their own, so that no other test's texts are involved.
    private enum FirstTouchedInAbortedTransaction: PreparedSite { static let name = "test_first_touched_in_aborted_transaction" }
    private enum TwoTexts: PreparedSite { static let name = "test_two_texts" }

    @Test("a prepared site first used in an aborted transaction closes its connection, and the next lease prepares it afresh")
    func preparedSiteAfterAbortedTransaction() async throws {
        let database = Database(configuration: try await TestCluster.makeDatabase(), logger: TestCluster.logger)
        let poolRun = Task { await database.client.run() }
        let logger = TestCluster.logger
        let closed = try await database.withConnection { connection -> Bool in
            try await connection.perform("BEGIN", logger: logger)
            await #expect(throws: PSQLError.self) { try await connection.run("SELECT 1 / 0", logger: logger) }
            // Preparing is refused in the aborted transaction; PostgresNIO would keep that refusal
            // for every later use of the name on this connection.
            do {
                _ = try await connection.rows("SELECT \(7)::int8 AS n", preparedAs: FirstTouchedInAbortedTransaction.self, logger: logger)
                Issue.record("a statement ran in an aborted transaction")
            } catch {
                #expect(error.sqlState == .inFailedTransaction, "\(String(reflecting: error))")
            }
            return connection.isClosed
        }
        #expect(closed)
        // Every connection the pool hands out now runs the site.
        for value in 1...4 {
            let rows = try await database.withConnection { connection in
                try await connection.rows("SELECT \(value)::int8 AS n", preparedAs: FirstTouchedInAbortedTransaction.self, logger: logger)
            }
            #expect(try rows.map { try $0.decode(Int.self) } == [value])
        }
        // A second text at one site runs, unprepared, rather than under the first text's name.
        let texts = try await database.withConnection { connection in
            let first = try await connection.rows("SELECT \(1)::int8 AS n", preparedAs: TwoTexts.self, logger: logger)
            let second = try await connection.rows("SELECT \(2)::int8 + 40 AS n", preparedAs: TwoTexts.self, logger: logger)
            return try (first + second).map { try $0.decode(Int.self) }
        }
        #expect(texts == [1, 42])
        poolRun.cancel()
        await poolRun.value
    }

    @Test("the service sends every statement through the closed-connection check")
    func everyStatementIsChecked() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Madoguchi")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        var offenders: [String] = []
        for case let file as URL in files where file.pathExtension == "swift" && file.lastPathComponent != "PostgresConnection+Closed.swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where ["connection.query(", "$0.query(", "connection.execute(", "connection.listen("].contains(where: line.contains) {
                offenders.append("\(file.lastPathComponent):\(number + 1)")
            }
        }
        #expect(offenders.isEmpty, "use connection.run(…) or listenUnlessClosed, not PostgresNIO's query, execute or listen: \(offenders)")
    }
}
