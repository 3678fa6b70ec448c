import Foundation
import MadoguchiAPI

/// The caller's own identity, and key management for admins.
extension APIHandler {
    func getCurrentPrincipal(_ input: Operations.GetCurrentPrincipal.Input) async throws -> Operations.GetCurrentPrincipal.Output {
        let principal = try principal
        return .ok(.init(body: .json(.init(
            keyId: principal.keyID.resourceID, name: principal.name, role: .init(principal.role), agentId: principal.agentID.resourceID))))
    }

    func listApiKeys(_ input: Operations.ListApiKeys.Input) async throws -> Operations.ListApiKeys.Output {
        let records = try await database.withConnection { try await keys.list(on: $0) }
        return .ok(.init(body: .json(.init(items: records.map(Components.Schemas.ApiKey.init)))))
    }

    func createApiKey(_ input: Operations.CreateApiKey.Input) async throws -> Operations.CreateApiKey.Output {
        guard case .json(let request) = input.body else { throw Problem.internalError }
        let name = request.name.trimmed
        guard (1...200).contains(name.count) else {
            throw Problem.validationFailed([.init(pointer: "/name", message: "must be 1 to 200 characters after trimming spaces")])
        }
        guard let role = Role(rawValue: request.role.rawValue) else { throw Problem.internalError }
        let principal = try principal
        let (record, secret) = try await database.withTransaction { connection in
            let created = try await keys.create(name: name, role: role, agentID: request.agentId?.uuid, on: connection)
            // The agent the key made for itself joined the team as one added through /v1/agents does.
            if request.agentId == nil, let agentID = created.0.agentID {
                try await EventStore(logger: logger).record(.agentCreated, actor: principal, data: ["agent_id": agentID.lowercased], on: connection)
            }
            return created
        }
        logger.notice("api key created", metadata: ["key_id": "\(record.id)", "role": "\(role.rawValue)", "prefix": "\(record.prefix)"])
        return .created(.init(body: .json(.init(key: secret.text, apiKey: .init(record)))))
    }

    func revokeApiKey(_ input: Operations.RevokeApiKey.Input) async throws -> Operations.RevokeApiKey.Output {
        guard let record = try await database.withConnection({ try await keys.revoke(id: input.path.keyId.uuid, on: $0) }) else {
            throw Problem.notFound("There is no API key \(input.path.keyId).")
        }
        keyCache.forget(keyID: record.id)
        logger.notice("api key revoked", metadata: ["key_id": "\(record.id)", "prefix": "\(record.prefix)"])
        return .ok(.init(body: .json(.init(record))))
    }
}

extension Components.Schemas.ApiKey {
    init(_ record: APIKeyRecord) {
        self.init(
            id: record.id.resourceID, name: record.name, role: .init(record.role), prefix: record.prefix, agentId: record.agentID.resourceID,
            createdAt: record.createdAt, lastUsedAt: record.lastUsedAt, revokedAt: record.revokedAt)
    }
}

extension Components.Schemas.Role {
    init(_ role: Role) {
        self = Self(rawValue: role.rawValue)!
    }
}
