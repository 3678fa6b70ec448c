import Crypto
import Foundation
import Logging
import PostgresNIO

/// One file of `sql/migrations`: `NNNN_what_it_does.sql`, applied once, never edited afterwards.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    /// Hex SHA-256 of the file, recorded when applied; a later mismatch means the file was edited.
    public var checksum: String { sqlChecksum(sql) }

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Reads `0007_add_rules.sql`; nil for any other file name.
    public init?(fileName: String, sql: String) {
        guard fileName.hasSuffix(".sql"), let underscore = fileName.firstIndex(of: "_") else { return nil }
        let digits = fileName[..<underscore]
        guard digits.count == 4, digits.allSatisfy(\.isASCII), let version = Int(digits), version > 0 else { return nil }
        self.init(version: version, name: String(fileName.dropLast(4)), sql: sql)
    }
}

/// A `sql/views/*.sql` file: `CREATE OR REPLACE VIEW …`, re-applied on every start.
public struct ViewDefinition: Sendable, Equatable {
    public let name: String
    public let sql: String

    /// Hex SHA-256 of the file, recorded when the view is created (`schema_views`).
    public var checksum: String { sqlChecksum(sql) }

    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// Hex SHA-256 of an SQL file's text: how the migrator tells a file changed since it was run.
private func sqlChecksum(_ sql: String) -> String {
    SHA256.hash(data: Array(sql.utf8)).lowercaseHex
}

public struct MigrationError: Error, CustomStringConvertible {
    public let description: String
}

/// Brings a database up to the schema this binary was built with.
///
/// Every step happens under one PostgreSQL advisory lock, so instances starting together take turns
/// instead of racing: the second finds the work done. Each migration runs in its own transaction with
/// its bookkeeping row, so a failure leaves the database at the last good version.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    public let views: [ViewDefinition]

    /// An arbitrary constant shared by every Madoguchi instance: "mado" in ASCII.
    static let advisoryLockKey: Int64 = 0x6D61_646F

    public init(migrations: [Migration], views: [ViewDefinition]) throws {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.version == next.version {
            throw MigrationError(description: "two migrations share version \(next.version): \(previous.name).sql and \(next.name).sql")
        }
        self.migrations = sorted
        self.views = views.sorted { $0.name < $1.name }
    }

    /// The migrations and views compiled into this binary from `sql/`.
    /// What SQL cannot write (IDNA, for one), run after a migration's SQL in its own transaction.
    static let swiftSteps: [Int: @Sendable (PostgresConnection, Logger) async throws -> Void] = [
        EmailIdentitySpellings.migration: { try await EmailIdentitySpellings.convert(on: $0, logger: $1) },
    ]

    public static func bundled() throws -> Migrator {
        var migrations: [Migration] = []
        var views: [ViewDefinition] = []
        for (path, sql) in EmbeddedResources.files {
            let fileName = String(path.split(separator: "/").last ?? "")
            if path.hasPrefix("sql/migrations/") {
                guard let migration = Migration(fileName: fileName, sql: sql) else {
                    throw MigrationError(description: "\(path) is not named NNNN_description.sql")
                }
                migrations.append(migration)
            } else if path.hasPrefix("sql/views/") {
                views.append(ViewDefinition(name: String(fileName.dropLast(4)), sql: sql))
            }
        }
        return try Migrator(migrations: migrations, views: views)
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    public struct Report: Sendable, Equatable {
        public var applied: [String]
        public var schemaVersion: Int
    }

    /// Applies what is missing, then re-applies every view.
    @discardableResult
    public func migrate(_ database: Database, logger: Logger) async throws -> Report {
        try await database.withConnection { connection in
            try await connection.perform("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
            do {
                let report = try await migrateHoldingLock(connection, logger: logger)
                try await connection.perform("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                return report
            } catch {
                // The lock is tied to the session; release it so the pooled connection is clean.
                _ = try? await connection.run("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                throw error
            }
        }
    }

    private func migrateHoldingLock(_ connection: PostgresConnection, logger: Logger) async throws -> Report {
        // The bookkeeping table is the one thing that must exist before any migration can be recorded.
        try await connection.perform("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        // What each view was created from: unchanged views are left alone (below).
        try await connection.perform("""
            CREATE TABLE IF NOT EXISTS schema_views (
                name        text PRIMARY KEY,
                checksum    text NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let applied = try await appliedMigrations(connection, logger: logger)
        try verify(applied: applied)

        var report = Report(applied: [], schemaVersion: applied.keys.max() ?? 0)
        let pending = migrations.filter { applied[$0.version] == nil }
        for migration in pending {
            let start = ContinuousClock.now
            try await connection.perform("BEGIN", logger: logger)
            do {
                // Views are re-created below from sql/views anyway; dropping them first means no
                // migration ever has to work around a view that reads the column it changes. Dropped
                // inside the first migration's transaction: should it fail, the views come back with
                // the rollback, and an instance still running the old release goes on answering reports.
                if migration.version == pending.first?.version { try await dropViews(connection, logger: logger) }
                try await Self.execute(script: migration.sql, on: connection, logger: logger)
                try await Self.swiftSteps[migration.version]?(connection, logger)
                try await connection.perform("""
                    INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
                try await connection.commit(logger: logger)
            } catch {
                _ = try? await connection.run("ROLLBACK", logger: logger)
                throw MigrationError(description: "migration \(migration.name).sql failed and was rolled back: \(Self.describe(error))")
            }
            logger.info("applied migration", metadata: ["migration": "\(migration.name)", "duration_ms": "\((ContinuousClock.now - start).milliseconds)"])
            report.applied.append(migration.name)
            report.schemaVersion = migration.version
        }

        // Re-creating a view takes an exclusive lock on it, which waits for every reader: a CSV export
        // streaming from another instance held a restart (and, queued behind it, every new reader of
        // that view everywhere) for as long as its client took. So with no migration applied, views
        // that all exist as their files say are left as they are.
        if pending.isEmpty, try await viewsAreCurrent(connection, logger: logger) { return report }
        try await connection.perform("BEGIN", logger: logger)
        do {
            for view in views {
                do {
                    try await Self.execute(script: view.sql, on: connection, logger: logger)
                } catch {
                    throw MigrationError(description: "view \(view.name).sql failed: \(Self.describe(error))")
                }
            }
            try await connection.perform("DELETE FROM schema_views", logger: logger)
            try await connection.perform("""
                INSERT INTO schema_views (name, checksum)
                SELECT * FROM unnest(\(views.map(\.name))::text[], \(views.map(\.checksum))::text[])
                """, logger: logger)
            try await connection.commit(logger: logger)
        } catch {
            _ = try? await connection.run("ROLLBACK", logger: logger)
            throw error
        }
        return report
    }

    /// Every view exists and was created from the file as it is now.
    private func viewsAreCurrent(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.run("""
            SELECT count(*) FROM unnest(\(views.map(\.name))::text[], \(views.map(\.checksum))::text[]) AS v(name, checksum)
            JOIN schema_views s ON s.name = v.name AND s.checksum = v.checksum
            JOIN pg_views p ON p.viewname = v.name AND p.schemaname = current_schema()
            """, logger: logger)
        for try await current in rows.decode(Int.self) { return current == views.count }
        return false
    }

    private func dropViews(_ connection: PostgresConnection, logger: Logger) async throws {
        for view in views.reversed() {
            do {
                try await connection.perform(PostgresQuery(unsafeSQL: "DROP VIEW IF EXISTS \"\(view.name)\" CASCADE"), logger: logger)
            } catch {
                throw MigrationError(description: "dropping view \(view.name) before migrating failed: \(Self.describe(error))")
            }
        }
    }

    private func appliedMigrations(_ connection: PostgresConnection, logger: Logger) async throws -> [Int: (name: String, checksum: String)] {
        var applied: [Int: (name: String, checksum: String)] = [:]
        let rows = try await connection.run("SELECT version, name, checksum FROM schema_migrations", logger: logger)
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            applied[version] = (name, checksum)
        }
        return applied
    }

    /// Refuses a database whose history disagrees with ours: an applied file that has since been edited,
    /// or migrations from a newer Madoguchi than this one.
    func verify(applied: [Int: (name: String, checksum: String)]) throws {
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, record) in applied.sorted(by: { $0.key < $1.key }) {
            guard let migration = known[version] else {
                throw MigrationError(description: """
                    the database has migration \(record.name) (version \(version)), which this build of Madoguchi does not \
                    know; it was migrated by a newer version. Run that version, or restore a backup taken before the upgrade.
                    """)
            }
            guard migration.checksum == record.checksum else {
                throw MigrationError(description: """
                    migration \(migration.name).sql was changed after it was applied (applied checksum \
                    \(record.checksum.prefix(12))…, file now \(migration.checksum.prefix(12))…). Migrations are forward-only: \
                    restore the file as it was and put the change in a new migration.
                    """)
            }
        }
    }

    /// The highest applied version and whether every bundled migration is in, and every view; for
    /// readiness checks and for workers waiting to start. The views count: they are dropped with the
    /// first pending migration and created again after the last, each migration committing on its
    /// own, so between the two a worker that started on "every migration applied" met a missing view
    /// ("relation report_response_zones does not exist" on a first start).
    public func status(_ connection: PostgresConnection, logger: Logger) async throws -> (version: Int, complete: Bool) {
        let tables = try await connection.run("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
        for try await exists in tables.decode(Bool.self) where !exists {
            return (0, migrations.isEmpty)
        }
        let rows = try await connection.run("""
            SELECT coalesce(max(version), 0), count(*),
                   (SELECT count(*) FROM pg_views WHERE schemaname = current_schema() AND viewname = ANY(\(views.map(\.name))::text[]))
            FROM schema_migrations
            """, logger: logger)
        for try await (version, count, viewsPresent) in rows.decode((Int, Int, Int).self) {
            return (version, version == latestVersion && count == migrations.count && viewsPresent == views.count)
        }
        return (0, migrations.isEmpty)
    }

    /// Runs each statement of a SQL file in turn, naming the one that failed.
    static func execute(script: String, on connection: PostgresConnection, logger: Logger) async throws {
        let statements = SQLScript.statements(in: script)
        for (number, statement) in statements.enumerated() {
            do {
                try await connection.perform(PostgresQuery(unsafeSQL: statement), logger: logger)
            } catch {
                throw MigrationError(description: "statement \(number + 1) of \(statements.count) (\(statement.prefix(60))…): \(describe(error))")
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? MigrationError { return error.description }
        if let error = error as? PSQLError, let message = error.serverInfo?[.message] {
            let position = error.serverInfo?[.position].map { " (at character \($0))" } ?? ""
            return message + position
        }
        if let error = error as? PSQLError { return String(reflecting: error) }
        return String(describing: error)
    }
}
