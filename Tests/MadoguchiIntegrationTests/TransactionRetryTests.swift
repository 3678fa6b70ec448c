import Foundation
import PostgresNIO
import Synchronization
import Testing
@testable import Madoguchi

@Suite("Transactions PostgreSQL rolls back for a deadlock", .timeLimit(.minutes(15)))
struct TransactionRetryTests {
    /// Two transactions that each lock one row, wait (on their first run only) until the other holds
    /// the second row, then ask for it: they wait on each other until PostgreSQL picks a victim.
    final class Crossing: Sendable {
        let database: Database
        let updated = Mutex<Set<Int>>([])
        let attempts = Mutex(0)

        init(database: Database) { self.database = database }

        func run(_ first: Int, _ second: Int) async throws {
            try await database.withTransaction { connection in
                let attempt = attempts.withLock { $0 += 1; return $0 }
                try await connection.query("UPDATE deadlock_probe SET n = n + 1 WHERE id = \(first)", logger: TestCluster.logger)
                updated.withLock { _ = $0.insert(first) }
                if attempt <= 2 {
                    for _ in 0..<1000 where !updated.withLock({ $0.contains(second) }) { try await Task.sleep(for: .milliseconds(10)) }
                }
                try await connection.query("UPDATE deadlock_probe SET n = n + 1 WHERE id = \(second)", logger: TestCluster.logger)
            }
        }
    }

    @Test("two transactions locking two rows in opposite orders deadlock; the victim runs again and both commit")
    func deadlockVictimRunsAgain() async throws {
        try await TestApp.run { app in
            try await app.execute("CREATE TABLE deadlock_probe (id int PRIMARY KEY, n int NOT NULL)")
            try await app.execute("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)")
            let crossing = Crossing(database: app.database)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await crossing.run(1, 2) }
                group.addTask { try await crossing.run(2, 1) }
                try await group.waitForAll()
            }
            #expect(crossing.attempts.withLock { $0 } == 3, "one of the two ran twice")
            #expect(try await app.count("SELECT sum(n)::int FROM deadlock_probe") == 4, "each committed both updates, once")
        }
    }
}
