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
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        return .ok(.init(body: .json(try await saveRule(id: input.path.ruleId.uuid, body, precondition: precondition))))
    }

    /// `precondition`: the `If-Match` a replacement (`id` given) came with.
    private func saveRule(id: UUID?, _ body: Components.Schemas.RuleInput, precondition: VersionPrecondition? = nil) async throws -> Components.Schemas.Rule {
        let principal = try principal
        try Self.requireName(body.name)
        let rule = Rule(
            id: id ?? UUID(), name: body.name.trimmed, position: body.position ?? 0,
            keywords: (body.keywords ?? []).map(\.trimmed).filter { !$0.isEmpty },
            channels: Channel.allCases.filter { channel in (body.channels ?? []).contains { $0.rawValue == channel.rawValue } },
            categories: body.categories ?? [], recipients: (body.recipients ?? []).map { $0.trimmed.lowercased() }.filter { !$0.isEmpty },
            vipOnly: body.vipOnly ?? false, priority: body.priority.map { Ticket.Priority(rawValue: $0.rawValue)! },
            requiresApproval: body.requiresApproval ?? false, queue: body.queue, category: body.category?.trimmed.nonEmpty,
            tags: (body.tags ?? []).map(\.trimmed).filter { !$0.isEmpty }.uniqued,
            requiredSkill: body.requiredSkill)
        var problems: [Problem.FieldError] = []
        if rule.category == Ticket.noCategory {
            problems.append(.init(pointer: "/category", message: "\(Ticket.noCategory) is how reports name no category"))
        }
        if !rule.hasCondition {
            problems.append(.init(pointer: nil, message: "a rule needs at least one condition: keywords, channels, categories, recipients or vip_only"))
        }
        if !rule.hasAction {
            problems.append(.init(pointer: nil, message: "a rule needs at least one action: priority, requires_approval, queue, category, tags or required_skill"))
        }
        if let position = body.position, !(1...100_000).contains(position) {
            problems.append(.init(pointer: "/position", message: "must be 1 to 100000"))
        }
        if let skill = rule.requiredSkill, skill.wholeMatch(of: /[a-z0-9_-]{1,64}/) == nil {
            problems.append(.init(pointer: "/required_skill", message: "1 to 64 lower-case letters, digits, _ and -"))
        }
        if let category = rule.category, category.count > 200 {
            problems.append(.init(pointer: "/category", message: "at most 200 characters"))
        }
        if rule.tags.count > 20 || rule.tags.contains(where: { $0.count > 100 }) {
            problems.append(.init(pointer: "/tags", message: "at most 20 tags of at most 100 characters each"))
        }
        if rule.recipients.count > 50 || rule.recipients.contains(where: { $0.count > 320 }) {
            problems.append(.init(pointer: "/recipients", message: "at most 50 addresses of at most 320 characters each"))
        }
        for (index, recipient) in rule.recipients.enumerated() where !recipient.contains("@") || recipient.hasPrefix("@") {
            problems.append(.init(pointer: "/recipients/\(index)", message: "must be an address, or a mailbox such as returns@"))
        }
        if !problems.isEmpty { throw Problem.validationFailed(problems) }
        let (saved, active) = try await database.withTransaction { connection in
            // Compared under the rule's row lock (taken only when If-Match came), so that two edits
            // compare what they replace in turn.
            if let id, let precondition { try await precondition.check("Rule \(id.lowercased)") { try await rules.lockedVersion(id: id, on: connection) } }
            let saved = try await rules.save(id: id, rule: rule, position: body.position, active: body.active ?? true, on: connection)
            try await EventStore(logger: logger).record(
                id == nil ? .ruleCreated : .ruleUpdated, actor: principal, data: ["rule_id": saved.0.id.uuidString.lowercased()], on: connection)
            return saved
        }
        tagVersion(saved.version)
        return Components.Schemas.Rule(saved, active: active)
    }
}

extension Components.Schemas.Rule {
    init(_ rule: Rule, active: Bool) {
        self.init(
            id: rule.id.resourceID, name: rule.name, position: rule.position, keywords: rule.keywords,
            channels: rule.channels.map { .init(rawValue: $0.rawValue)! }, categories: rule.categories, recipients: rule.recipients,
            vipOnly: rule.vipOnly, priority: rule.priority.map { .init(rawValue: $0.rawValue)! }, requiresApproval: rule.requiresApproval,
            queue: rule.queue, category: rule.category, tags: rule.tags, requiredSkill: rule.requiredSkill, active: active,
            version: rule.version)
    }
}
