import Foundation
import MadoguchiAPI

/// `/v1/agents`: the team. Admins and supervisors manage it; an agent sets only their own availability.
extension APIHandler {
    var agents: AgentStore { AgentStore(logger: logger) }

    func listAgents(_ input: Operations.ListAgents.Input) async throws -> Operations.ListAgents.Output {
        let all = try await database.withConnection {
            try await agents.list(queue: input.query.queue, includeInactive: input.query.includeInactive ?? false, on: $0)
        }
        return .ok(.init(body: .json(.init(items: all.map(Components.Schemas.Agent.init)))))
    }

    func createAgent(_ input: Operations.CreateAgent.Input) async throws -> Operations.CreateAgent.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        let draft = AgentChanges(
            displayName: body.displayName.trimmed, email: body.email?.trimmed, queues: body.queues?.uniqued, skills: body.skills?.uniqued,
            capacity: body.capacity, availability: body.availability.map { Agent.Availability(rawValue: $0.rawValue)! },
            requiresApproval: body.requiresApproval)
        let agent = try await database.withTransaction { try await agents.create(draft, by: principal, on: $0) }
        tagVersion(agent.version)
        return .created(.init(body: .json(.init(agent))))
    }

    func getAgent(_ input: Operations.GetAgent.Input) async throws -> Operations.GetAgent.Output {
        let agent = try await database.withConnection { try await agents.agent(id: input.path.agentId.uuid, on: $0) }
        tagVersion(agent.version)
        return .ok(.init(body: .json(.init(agent))))
    }

    func updateAgent(_ input: Operations.UpdateAgent.Input) async throws -> Operations.UpdateAgent.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        let id = input.path.agentId.uuid
        let changes = AgentChanges(
            displayName: body.displayName?.trimmed, email: body.email?.trimmed, queues: body.queues?.uniqued, skills: body.skills?.uniqued,
            capacity: body.capacity, availability: body.availability.map { Agent.Availability(rawValue: $0.rawValue)! },
            requiresApproval: body.requiresApproval)
        if principal.role == .agent {
            guard principal.agentID == id else {
                _ = try await database.withConnection { try await agents.agent(id: id, on: $0) }  // 404 before 403
                throw Problem(.forbidden, status: .forbidden, title: "Forbidden", detail: "An agent may change only their own availability.")
            }
            guard changes.fieldNames.isEmpty else {
                throw Problem(.forbidden, status: .forbidden, title: "Forbidden",
                              detail: "An agent may change only their availability; a supervisor changes \(changes.fieldNames.joined(separator: ", ")).")
            }
        }
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let agent = try await database.withTransaction { connection in
            try await precondition.check("Agent \(id.lowercased)") { try await agents.lockedVersion(id: id, on: connection) }
            return try await agents.update(id: id, changes, by: principal, on: connection)
        }
        tagVersion(agent.version)
        return .ok(.init(body: .json(.init(agent))))
    }

    func deactivateAgent(_ input: Operations.DeactivateAgent.Input) async throws -> Operations.DeactivateAgent.Output {
        let principal = try principal
        let agent = try await database.withTransaction { try await agents.deactivate(id: input.path.agentId.uuid, by: principal, on: $0) }
        // Its keys were revoked in that transaction: refused from the next request here, too.
        keyCache.forget(agentID: agent.id)
        logger.notice("agent deactivated", metadata: ["agent_id": "\(agent.id.lowercased)"])
        return .ok(.init(body: .json(.init(agent))))
    }

    func getAgentWorkload(_ input: Operations.GetAgentWorkload.Input) async throws -> Operations.GetAgentWorkload.Output {
        let workload = try await database.withConnection { try await agents.workload(id: input.path.agentId.uuid, on: $0) }
        return .ok(.init(body: .json(.init(
            agentId: workload.agentID.resourceID, open: workload.open, claimed: workload.claimed, assigned: workload.assigned,
            awaitingReply: workload.awaitingReply, oldestWaitingSince: workload.oldestWaitingSince, capacity: workload.capacity,
            availability: .init(rawValue: workload.availability.rawValue)!))))
    }
}

extension Components.Schemas.Agent {
    init(_ agent: Agent) {
        self.init(
            id: agent.id.resourceID, displayName: agent.displayName, email: agent.email, queues: agent.queues, skills: agent.skills,
            capacity: agent.capacity, availability: .init(rawValue: agent.availability.rawValue)!,
            availabilityChangedAt: agent.availabilityChangedAt, requiresApproval: agent.requiresApproval,
            roles: agent.roles.compactMap(Components.Schemas.Role.init(rawValue:)), active: agent.active,
            deactivatedAt: agent.deactivatedAt, version: agent.version, createdAt: agent.createdAt, updatedAt: agent.updatedAt)
    }
}
