import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Migrations")
struct MigrationTests {
    static let logger = TestCluster.logger

    static func count(_ database: Database, _ query: PostgresQuery) async throws -> Int {
        try await database.withConnection { connection in
            let rows = try await connection.query(query, logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return -1
        }
    }

    @Test("the bundled migrations apply once; a second run applies nothing and re-applies the views")
    func appliesOnce() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let migrator = try Migrator.bundled()
            let first = try await migrator.migrate(database, logger: Self.logger)
            #expect(first.applied.count == migrator.migrations.count)
            #expect(first.schemaVersion == migrator.latestVersion)
            try await database.withConnection { try await $0.query("DROP VIEW ticket_overview", logger: Self.logger) }
            let second = try await migrator.migrate(database, logger: Self.logger)
            #expect(second.applied.isEmpty)
            #expect(try await Self.count(database, "SELECT count(*) FROM schema_migrations") == migrator.migrations.count)
            #expect(try await Self.count(database, "SELECT count(*) FROM pg_views WHERE viewname = 'ticket_overview'") == 1)
        }
    }

    @Test("an applied migration whose file changed stops the migrator with a message naming it")
    func tamperedMigration() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let original = Migration(version: 1, name: "0001_widgets", sql: "CREATE TABLE widgets (id int);")
            try await Migrator(migrations: [original], views: []).migrate(database, logger: Self.logger)
            let tampered = Migration(version: 1, name: "0001_widgets", sql: "CREATE TABLE widgets (id bigint);")
            let next = Migration(version: 2, name: "0002_gadgets", sql: "CREATE TABLE gadgets (id int);")
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(migrations: [tampered, next], views: []).migrate(database, logger: Self.logger)
            }
            #expect(error?.description.contains("0001_widgets.sql was changed after it was applied") == true)
            // Nothing after the refusal ran.
            #expect(try await Self.count(database, "SELECT count(*) FROM pg_tables WHERE tablename = 'gadgets'") == 0)
        }
    }

    @Test("a database migrated by a newer build is refused rather than run against")
    func newerDatabase() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let one = Migration(version: 1, name: "0001_a", sql: "SELECT 1")
            let two = Migration(version: 2, name: "0002_b", sql: "SELECT 2")
            try await Migrator(migrations: [one, two], views: []).migrate(database, logger: Self.logger)
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(migrations: [one], views: []).migrate(database, logger: Self.logger)
            }
            #expect(error?.description.contains("newer version") == true)
        }
    }

    @Test("a failing migration rolls back whole and leaves the schema at the previous version")
    func failingMigrationRollsBack() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let good = Migration(version: 1, name: "0001_good", sql: "CREATE TABLE good (id int);")
            let bad = Migration(version: 2, name: "0002_bad", sql: "CREATE TABLE half (id int);\nINSERT INTO nowhere VALUES (1);")
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(migrations: [good, bad], views: []).migrate(database, logger: Self.logger)
            }
            #expect(error?.description.contains("0002_bad.sql failed") == true)
            #expect(error?.description.contains("nowhere") == true)
            #expect(try await Self.count(database, "SELECT max(version) FROM schema_migrations") == 1)
            #expect(try await Self.count(database, "SELECT count(*) FROM pg_tables WHERE tablename = 'half'") == 0)
        }
    }

    @Test("instances migrating the same database at once take turns: each migration applies exactly once")
    func concurrentMigrators() async throws {
        let configuration = try await TestCluster.makeEmptyDatabase()
        let migrator = try Migrator.bundled()
        let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await TestCluster.withDatabase(configuration) { try await migrator.migrate($0, logger: Self.logger) }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.map(\.applied.count).sorted() == [0, 0, 0, migrator.migrations.count])
        #expect(reports.allSatisfy { $0.schemaVersion == migrator.latestVersion })
    }

    @Test("every bundled migration is named NNNN_description.sql and the versions run 1, 2, 3 … without gaps")
    func bundledNumbering() throws {
        let migrator = try Migrator.bundled()
        #expect(migrator.migrations.map(\.version) == Array(1...migrator.migrations.count))
        #expect(!migrator.views.isEmpty)
    }
}
