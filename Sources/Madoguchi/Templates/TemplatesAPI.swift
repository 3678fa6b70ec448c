import Foundation
import MadoguchiAPI

extension APIHandler {
    var templates: TemplateStore { TemplateStore(logger: logger) }

    func listTemplates(_ input: Operations.ListTemplates.Input) async throws -> Operations.ListTemplates.Output {
        let all = try await database.withConnection { try await templates.list(on: $0) }
        return .ok(.init(body: .json(.init(items: all.map(Components.Schemas.Template.init)))))
    }

    func getTemplate(_ input: Operations.GetTemplate.Input) async throws -> Operations.GetTemplate.Output {
        let template = try await database.withConnection { try await templates.template(id: input.path.templateId.uuid, on: $0) }
        tagVersion(Int64(template.version))
        return .ok(.init(body: .json(.init(template))))
    }

    func createTemplate(_ input: Operations.CreateTemplate.Input) async throws -> Operations.CreateTemplate.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        try Self.requireName(body.name)
        // Rendered into a header line: an acknowledgement from it would otherwise be refused at delivery, every time.
        try ReplyDesk.checkSubject(body.subject)
        try Self.checkVariables(subject: body.subject, body: body.body)
        let template = try await database.withTransaction { connection in
            let saved = try await templates.save(id: nil, name: body.name.trimmed, subject: body.subject, body: body.body, by: agentID, on: connection)
            try await EventStore(logger: logger).record(.templateCreated, actor: principal, data: ["template_id": saved.id.uuidString.lowercased()], on: connection)
            return saved
        }
        tagVersion(Int64(template.version))
        return .created(.init(body: .json(.init(template))))
    }

    func updateTemplate(_ input: Operations.UpdateTemplate.Input) async throws -> Operations.UpdateTemplate.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        try Self.requireName(body.name)
        // Rendered into a header line: an acknowledgement from it would otherwise be refused at delivery, every time.
        try ReplyDesk.checkSubject(body.subject)
        try Self.checkVariables(subject: body.subject, body: body.body)
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let id = input.path.templateId.uuid
        let template = try await database.withTransaction { connection in
            try await precondition.check("Template \(id.lowercased)") { try await templates.lockedVersion(id: id, on: connection) }
            // The acknowledgement is looked up by its name at each mail: renamed, it stopped without a
            // word, and could then be deleted as a template nothing uses.
            if let acknowledgement = delivery.autoReplyTemplate, acknowledgement != body.name.trimmed,
               case let current = try await templates.template(id: id, on: connection), acknowledgement == current.name {
                throw Problem(Problem.Kind(rawValue: "template-in-use"), status: .conflict, title: "Template in use",
                              detail: "MADOGUCHI_AUTO_REPLY_TEMPLATE names \(current.name): it is the automatic acknowledgement, found by that name. "
                                  + "Keep its name (change its text freely), or name another template there first.")
            }
            let saved = try await templates.save(
                id: id, name: body.name.trimmed, subject: body.subject, body: body.body, by: agentID, on: connection)
            try await EventStore(logger: logger).record(
                .templateUpdated, actor: principal, data: ["template_id": saved.id.uuidString.lowercased(), "version": saved.version], on: connection)
            return saved
        }
        tagVersion(Int64(template.version))
        return .ok(.init(body: .json(.init(template))))
    }

    func deleteTemplate(_ input: Operations.DeleteTemplate.Input) async throws -> Operations.DeleteTemplate.Output {
        let (principal, agentID) = try actingAgent
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let id = input.path.templateId.uuid
        try await database.withTransaction { connection in
            try await precondition.check("Template \(id.lowercased)") { try await templates.lockedVersion(id: id, on: connection) }
            let current = try await templates.template(id: id, on: connection)
            // Acknowledgements look the template up at each mail: removed, they would stop without a
            // word (a warning in the log).
            if let acknowledgement = delivery.autoReplyTemplate, acknowledgement == current.name || acknowledgement.lowercased() == id.lowercased {
                throw Problem(Problem.Kind(rawValue: "template-in-use"), status: .conflict, title: "Template in use",
                              detail: "MADOGUCHI_AUTO_REPLY_TEMPLATE names \(current.name): it is the automatic acknowledgement. "
                                  + "Name another template there first, or change this one's text instead.")
            }
            guard let name = try await templates.delete(id: id, by: agentID, on: connection) else {
                throw Problem.notFound("There is no template \(id.lowercased).")
            }
            try await EventStore(logger: logger).record(.templateDeleted, actor: principal, data: ["template_id": id.lowercased, "name": name],
                                                        on: connection)
        }
        return .noContent(.init())
    }

    func listTemplateVersions(_ input: Operations.ListTemplateVersions.Input) async throws -> Operations.ListTemplateVersions.Output {
        let id = input.path.templateId.uuid
        guard let versions = try await database.withConnection({ try await templates.versions(of: id, on: $0) }) else {
            throw Problem.notFound("There is no template \(id.lowercased).")
        }
        return .ok(.init(body: .json(.init(items: versions.map {
            .init(version: $0.version, name: $0.name, subject: $0.subject, body: $0.body, writtenBy: $0.writtenBy?.resourceID, writtenAt: $0.writtenAt)
        }))))
    }

    /// A 422 naming the subject or body whose variables no render could fill (`TemplateRenderer.problems`).
    static func checkVariables(subject: String?, body: String) throws {
        var errors: [Problem.FieldError] = []
        for (pointer, text) in [("/subject", subject ?? ""), ("/body", body)] {
            errors += TemplateRenderer.problems(in: text).map { Problem.FieldError(pointer: pointer, message: $0) }
        }
        if !errors.isEmpty { throw Problem.validationFailed(errors) }
    }

    func renderTemplate(_ input: Operations.RenderTemplate.Input) async throws -> Operations.RenderTemplate.Output {
        let (_, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let (template, values) = try await database.withConnection { connection in
            let template = try await templates.template(id: input.path.templateId.uuid, on: connection)
            let values = try await templates.values(
                ticketID: body.ticketId.uuid, agentID: agentID, order: body.order?.additionalProperties ?? [:], on: connection)
            return (template, values)
        }
        do {
            let rendered = try TemplateRenderer(values: values).render([template.subject ?? "", template.body])
            // What a reply may hold, so that the draft made from this is not refused: a subject on one
            // line within its 2,000 characters (a value or the customer's subject may bring a line
            // break or length), as the automatic reply makes it.
            return .ok(.init(body: .json(.init(
                subject: template.subject == nil ? nil : Text.prefix(Text.oneLine(rendered[0]), ReplyDesk.maxSubjectLength),
                body: rendered[1], templateVersion: template.version))))
        } catch {
            let names = error.unknown + error.unfilled
            var problem = Problem(
                Problem.Kind(rawValue: "unfilled-variables"), status: .unprocessableContent, title: "Variables without values",
                detail: [
                    error.unknown.isEmpty ? nil : "unknown: \(error.unknown.joined(separator: ", "))",
                    error.unfilled.isEmpty ? nil : "no value: \(error.unfilled.joined(separator: ", "))",
                ].compactMap { $0 }.joined(separator: "; "))
            problem.members["findings"] = .array(names.map { name in
                // Where the agent finds it: its line and column in the body, or the subject.
                var finding: [String: Problem.Member] = [
                    "type": .string(error.unknown.contains(name) ? "unknown-variable" : "unfilled-variable"),
                    "message": .string("{{\(name)}}"), "text": .string(name),
                ]
                if let (line, column) = TemplateRenderer.firstUse(of: name, in: template.body) {
                    finding["line"] = .int(line)
                    finding["column"] = .int(column)
                } else if TemplateRenderer.firstUse(of: name, in: template.subject ?? "") != nil {
                    finding["message"] = .string("{{\(name)}} in the subject")
                }
                return .object(finding)
            })
            throw problem
        }
    }
}

extension APIHandler {
    /// Names are shown to people and must say something once trimmed.
    static func requireName(_ name: String) throws {
        guard !name.trimmed.isEmpty else {
            throw Problem.validationFailed([.init(pointer: "/name", message: "must not be blank")])
        }
    }
}

extension Components.Schemas.Template {
    init(_ template: Template) {
        self.init(
            id: template.id.resourceID, name: template.name, subject: template.subject, body: template.body, version: template.version,
            variables: TemplateRenderer.variables(in: (template.subject ?? "") + "\n" + template.body),
            updatedBy: template.updatedBy.resourceID, createdAt: template.createdAt, updatedAt: template.updatedAt)
    }
}
