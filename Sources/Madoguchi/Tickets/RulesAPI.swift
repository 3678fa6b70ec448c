import Foundation
import MadoguchiAPI

extension APIHandler {
    var rules: RuleStore { RuleStore(logger: logger) }

    func listRules(_ input: Operations.ListRules.Input) async throws -> Operations.ListRules.Output {
        let all = try await database.withConnection { try await rules.list(on: $0) }
        return .ok(.init(body: .json(.init(items: all.map { Components.Schemas.Rule($0.0, active: $0.active) }))))
    }

    func createRule(_ input: Operations.CreateRule.Input) async throws -> Operations.CreateRule.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let saved = try await saveRule(id: nil, body)
        return .created(.init(body: .json(saved)))
    }

    func updateRule(_ input: Operations.UpdateRule.Input) async throws -> Operations.UpdateRule.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        return .ok(.init(body: .json(try await saveRule(id: input.path.ruleId.uuid, body))))
    }

    private func saveRule(id: UUID?, _ body: Components.Schemas.RuleInput) async throws -> Components.Schemas.Rule {
        let principal = try principal
        try Self.requireName(body.name)
        let rule = PriorityRule(
            id: id ?? UUID(), name: body.name.trimmed, priority: Ticket.Priority(rawValue: body.priority.rawValue)!,
            keywords: (body.keywords ?? []).map(\.trimmed).filter { !$0.isEmpty },
            channels: Channel.allCases.filter { channel in (body.channels ?? []).contains { $0.rawValue == channel.rawValue } },
            categories: body.categories ?? [], vipOnly: body.vipOnly ?? false, requiresApproval: body.requiresApproval ?? false)
        guard !rule.keywords.isEmpty || !rule.channels.isEmpty || !rule.categories.isEmpty || rule.vipOnly else {
            throw Problem.validationFailed([.init(pointer: nil, message: "a rule needs at least one condition: keywords, channels, categories or vip_only")])
        }
        let (saved, active) = try await database.withTransaction { connection in
            let saved = try await rules.save(id: id, rule: rule, active: body.active ?? true, on: connection)
            try await EventStore(logger: logger).record(
                id == nil ? .ruleCreated : .ruleUpdated, actor: principal, data: ["rule_id": saved.0.id.uuidString.lowercased()], on: connection)
            return saved
        }
        return Components.Schemas.Rule(saved, active: active)
    }
}

extension Components.Schemas.Rule {
    init(_ rule: PriorityRule, active: Bool) {
        self.init(
            id: rule.id.resourceID, name: rule.name, priority: .init(rawValue: rule.priority.rawValue)!, keywords: rule.keywords,
            channels: rule.channels.map { .init(rawValue: $0.rawValue)! }, categories: rule.categories, vipOnly: rule.vipOnly,
            requiresApproval: rule.requiresApproval, active: active)
    }
}
