import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Migrations", .timeLimit(.minutes(15)))
struct MigrationTests {
    static let logger = TestCluster.logger

    /// A view over a column a later migration changes, as report views read ticket columns.
    static let channelView = ViewDefinition(
        name: "tickets_by_channel", sql: "CREATE OR REPLACE VIEW tickets_by_channel AS SELECT channel, count(*) AS tickets FROM tickets GROUP BY channel")

    @Test("the bundled migrations apply once; a second run applies nothing and re-applies the views")
    func appliesOnce() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let bundled = try Migrator.bundled()
            let migrator = try Migrator(migrations: bundled.migrations, views: bundled.views + [Self.channelView])
            let first = try await migrator.migrate(database, logger: Self.logger)
            #expect(first.applied.count == migrator.migrations.count)
            #expect(first.schemaVersion == migrator.latestVersion)
            try await database.withConnection { try await $0.query("DROP VIEW tickets_by_channel", logger: Self.logger) }
            let second = try await migrator.migrate(database, logger: Self.logger)
            #expect(second.applied.isEmpty)
            #expect(try await database.count("SELECT count(*) FROM schema_migrations") == migrator.migrations.count)
            #expect(try await database.count("SELECT count(*) FROM pg_views WHERE viewname = 'tickets_by_channel'") == 1)
        }
    }

    @Test("unchanged views are not re-created on a restart, so a reader holding one (a CSV export) does not hold the restart up; a changed one is")
    func unchangedViewsLeftAlone() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let bundled = try Migrator.bundled()
            let migrator = try Migrator(migrations: bundled.migrations, views: bundled.views + [Self.channelView])
            _ = try await migrator.migrate(database, logger: Self.logger)
            let released = Gate()
            let reading = Gate()
            // Another instance streaming an export: a transaction that has read the view and goes on.
            let reader = Task {
                try await database.withConnection { connection in
                    try await connection.perform("BEGIN", logger: Self.logger)
                    _ = try await connection.query("SELECT * FROM tickets_by_channel", logger: Self.logger).collect()
                    reading.open()
                    while !released.isOpen { try await Task.sleep(for: .milliseconds(50)) }
                    try await connection.perform("COMMIT", logger: Self.logger)
                }
            }
            while !reading.isOpen { try await Task.sleep(for: .milliseconds(20)) }
            let restarted = await withTaskGroup(of: Bool.self) { group in
                group.addTask { (try? await migrator.migrate(database, logger: Self.logger)) != nil }
                group.addTask {
                    try? await Task.sleep(for: .seconds(30))
                    return false
                }
                let first = await group.next() ?? false
                released.open()  // lets a migrate stuck behind the reader finish, so the group can end
                group.cancelAll()
                await group.waitForAll()
                return first
            }
            try await reader.value
            #expect(restarted, "the second migrate waited for the reader")

            // A view whose file changed is re-created.
            let changed = ViewDefinition(name: "tickets_by_channel", sql: "CREATE OR REPLACE VIEW tickets_by_channel AS SELECT channel, count(*) AS tickets, 1 AS changed FROM tickets GROUP BY channel")
            _ = try await Migrator(migrations: bundled.migrations, views: bundled.views + [changed]).migrate(database, logger: Self.logger)
            #expect(try await database.count("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tickets_by_channel' AND column_name = 'changed'") == 1)
        }
    }

    @Test("a migration may change a column a view reads: views are dropped before pending migrations and re-created after")
    func viewsDoNotBlockMigrations() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let bundled = try Migrator.bundled()
            // Everything up to the channel domain, with the view in place over text columns…
            let before = try Migrator(migrations: bundled.migrations.filter { $0.version < 16 }, views: [Self.channelView])
            try await before.migrate(database, logger: Self.logger)
            // …then the migration that changes tickets.channel's type under it.
            let after = try Migrator(migrations: bundled.migrations, views: [Self.channelView])
            let report = try await after.migrate(database, logger: Self.logger)
            #expect(report.applied.contains("0016_channel_domain"))
            #expect(try await database.count("SELECT count(*) FROM pg_views WHERE viewname = 'tickets_by_channel'") == 1)
            #expect(try await database.count("""
                SELECT count(*) FROM information_schema.columns
                WHERE table_name = 'tickets' AND column_name = 'channel' AND domain_name = 'channel'
                """) == 1)
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
            #expect(try await database.count("SELECT count(*) FROM pg_tables WHERE tablename = 'gadgets'") == 0)
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
            #expect(try await database.count("SELECT max(version) FROM schema_migrations") == 1)
            #expect(try await database.count("SELECT count(*) FROM pg_tables WHERE tablename = 'half'") == 0)
        }
    }

    @Test("a failing migration leaves the views as they were: an instance of the old release goes on answering reports")
    func failingMigrationKeepsViews() async throws {
        try await TestCluster.withDatabase(try await TestCluster.makeEmptyDatabase()) { (database: Database) async throws in
            let good = Migration(version: 1, name: "0001_good", sql: "CREATE TABLE good (id int);")
            let view = ViewDefinition(name: "good_count", sql: "CREATE OR REPLACE VIEW good_count AS SELECT count(*) AS n FROM good")
            try await Migrator(migrations: [good], views: [view]).migrate(database, logger: Self.logger)
            let bad = Migration(version: 2, name: "0002_bad", sql: "INSERT INTO nowhere VALUES (1);")
            await #expect(throws: MigrationError.self) {
                try await Migrator(migrations: [good, bad], views: [view]).migrate(database, logger: Self.logger)
            }
            #expect(try await database.count("SELECT count(*) FROM pg_views WHERE viewname = 'good_count'") == 1)
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
    }
}
