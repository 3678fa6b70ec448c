import Logging
import PostgresNIO

/// For commands that do one thing and exit (`migrate`, `keys …`): provision the database, bring the
/// schema up to date as `migrating` says, run `body`, and leave everything as found (an embedded
/// cluster this process started is stopped again; one a server is using is left running).
public enum OneShotDatabase {
    public enum Migrating: Sendable {
        /// `migrate`, `dev seed`.
        case always
        /// `keys …`: a new database is set up (the first key is made before the first start), but an
        /// existing one is migrated only by `migrate` or `serve`. A new binary's `keys list`, run to
        /// check something before an upgrade, moved the schema on under every server still running the
        /// old one, which then answered 503 (deploy/RUNBOOK.md, Upgrade).
        case onlyANewDatabase
    }

    public static func run<Result: Sendable>(
        _ configuration: Configuration,
        logger: Logger,
        migrating: Migrating = .always,
        _ body: @Sendable (Database, Migrator.Report) async throws -> Result
    ) async throws -> Result {
        let migrator = try Migrator.bundled()
        let provisioned = try await DatabaseProvisioner.provision(configuration, use: .borrowOrOwnBriefly, logger: logger)
        let database = Database(configuration: provisioned.clientConfiguration, logger: logger)
        do {
            let result = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await database.client.run() }
                defer { group.cancelAll() }
                await Task.yield()  // let run() begin before the first lease, or PostgresNIO warns
                try await database.checkReachable(timeout: configuration.databaseStartWait, describing: provisioned.target)
                if migrating == .onlyANewDatabase {
                    let (version, complete) = try await database.withConnection { try await migrator.status($0, logger: logger) }
                    if version != 0 {
                        guard complete else {
                            let migrate = "run `madoguchi migrate` first, with every server and worker stopped (deploy/RUNBOOK.md, Upgrade)"
                            throw CommandError(description: version < migrator.latestVersion
                                ? "the database's schema is at version \(version) and this madoguchi needs \(migrator.latestVersion): " + migrate
                                : version > migrator.latestVersion
                                ? "the database's schema (version \(version)) is newer than this madoguchi (\(migrator.latestVersion)): use the newer binary"
                                : "the database's schema is at version \(version) but its report views are missing (a migration stopped before its end): "
                                    + migrate)
                        }
                        return try await body(database, Migrator.Report(applied: [], schemaVersion: version))
                    }
                }
                let report = try await migrator.migrate(database, logger: logger)
                return try await body(database, report)
            }
            await provisioned.release(logger: logger)
            return result
        } catch {
            await provisioned.release(logger: logger)
            // PSQLError's description hides the server's message; a command-line user needs it.
            if let error = error as? PSQLError { throw CommandError(description: Migrator.describe(error)) }
            throw error
        }
    }
}

public struct CommandError: Error, CustomStringConvertible {
    public let description: String
}
