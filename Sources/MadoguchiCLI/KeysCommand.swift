import ArgumentParser
import Foundation
import Madoguchi

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API keys.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key and print it once. Only its hash is stored: copy it now.")

        @OptionGroup var common: CommonOptions

        @Option(help: "gateway, agent, supervisor, dashboard, order_system or admin.")
        var role: String

        @Option(help: "Who or what the key is for, e.g. \"web form gateway\" or \"Sato Hanako\".")
        var name: String

        @Option(help: "For agent and supervisor keys: the agent to act for (default: a new agent with --name).")
        var agent: UUID?

        func run() async throws {
            guard let role = Role(rawValue: role) else {
                throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let name = name.trimmingCharacters(in: .whitespaces)
            guard (1...200).contains(name.count) else { throw ValidationError("--name must be 1 to 200 characters") }
            let configuration = try common.configuration()
            let logger = common.makeLogger(configuration)
            let store = APIKeyStore(logger: logger)
            let (record, secret) = try await OneShotDatabase.run(configuration, logger: logger, migrating: .onlyANewDatabase) { database, _ in
                try await database.withTransaction { try await store.create(name: name, role: role, agentID: agent, on: $0) }
            }
            FileHandle.standardError.write(Data("created \(record.role.rawValue) key \(record.prefix) (\(record.id.uuidString.lowercased())) for \(record.name); it is shown only this once:\n".utf8))
            print(secret.text)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys, newest first. Secrets are never shown.")

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let configuration = try common.configuration()
            let logger = common.makeLogger(configuration)
            let store = APIKeyStore(logger: logger)
            let records = try await OneShotDatabase.run(configuration, logger: logger, migrating: .onlyANewDatabase) { database, _ in
                try await database.withConnection { try await store.list(on: $0) }
            }
            let formatter = ISO8601DateFormatter()
            print(["ID", "PREFIX", "ROLE", "NAME", "CREATED", "LAST USED", "REVOKED"].joined(separator: "\t"))
            for record in records {
                print([
                    record.id.uuidString.lowercased(), record.prefix, record.role.rawValue, record.name,
                    formatter.string(from: record.createdAt),
                    record.lastUsedAt.map(formatter.string(from:)) ?? "-",
                    record.revokedAt.map(formatter.string(from:)) ?? "-",
                ].joined(separator: "\t"))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id or prefix. Every running instance refuses it within a second.")

        @OptionGroup var common: CommonOptions

        @Argument(help: "The key's id, or its prefix (mdg_xxxxxxxx).")
        var key: String

        func run() async throws {
            let configuration = try common.configuration()
            let logger = common.makeLogger(configuration)
            let store = APIKeyStore(logger: logger)
            let wanted = key
            let revoked = try await OneShotDatabase.run(configuration, logger: logger, migrating: .onlyANewDatabase) { database, _ in
                try await database.withConnection { connection -> APIKeyRecord? in
                    let match = try await store.list(on: connection).first {
                        $0.id.uuidString.lowercased() == wanted.lowercased() || $0.prefix == wanted
                    }
                    guard let match else { return nil }
                    return try await store.revoke(id: match.id, on: connection)
                }
            }
            guard let revoked else { throw ValidationError("no key has the id or prefix \(wanted)") }
            print("revoked \(revoked.prefix) (\(revoked.name))")
        }
    }
}

extension UUID: @retroactive ExpressibleByArgument {
    public init?(argument: String) { self.init(uuidString: argument) }
}
