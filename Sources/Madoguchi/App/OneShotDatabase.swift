import Logging
import PostgresNIO

/// For commands that do one thing and exit (`migrate`, `keys …`): provision the database, bring the
/// schema up to date, run `body`, and leave everything as found (an embedded cluster this process
/// started is stopped again; one a server is using is left running).
public enum OneShotDatabase {
    public static func run<Result: Sendable>(
        _ configuration: Configuration,
        logger: Logger,
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
                try await database.checkReachable(describing: provisioned.target)
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
