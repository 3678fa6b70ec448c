import Foundation
import MadoguchiAPI

extension APIHandler {
    var slaPolicies: SLAPolicyStore { SLAPolicyStore(logger: logger) }

    func listSlaPolicies(_ input: Operations.ListSlaPolicies.Input) async throws -> Operations.ListSlaPolicies.Output {
        let all = try await database.withConnection { try await slaPolicies.list(on: $0) }
        return .ok(.init(body: .json(.init(items: all.map(Components.Schemas.SlaPolicy.init)))))
    }

    func getSlaPolicy(_ input: Operations.GetSlaPolicy.Input) async throws -> Operations.GetSlaPolicy.Output {
        let policy = try await database.withConnection { try await slaPolicies.policy(id: input.path.policyId.uuid, on: $0) }
        tagVersion(policy.version)
        return .ok(.init(body: .json(.init(policy))))
    }

    func createSlaPolicy(_ input: Operations.CreateSlaPolicy.Input) async throws -> Operations.CreateSlaPolicy.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let draft = try SLAPolicyDraft(body)
        let principal = try principal
        let policy = try await database.withTransaction { connection in
            let saved = try await slaPolicies.save(id: nil, draft, on: connection)
            try await EventStore(logger: logger).record(.slaPolicyCreated, actor: principal, data: ["policy_id": saved.id.lowercased], on: connection)
            return saved
        }
        tagVersion(policy.version)
        return .created(.init(body: .json(.init(policy))))
    }

    func replaceSlaPolicy(_ input: Operations.ReplaceSlaPolicy.Input) async throws -> Operations.ReplaceSlaPolicy.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let draft = try SLAPolicyDraft(body)
        let principal = try principal
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let id = input.path.policyId.uuid
        let (policy, reset) = try await database.withTransaction { connection in
            // Read before the save takes its locks (in the order every save takes them): of two edits
            // at the same moment, the second may compare with what the first replaced. So a version
            // that moved by more than this save's step means another edit came between, and the
            // clocks are set again whatever this one changed (the first one's reset may have run
            // batches by targets this one has just replaced). Another policy taking the default flag
            // from this one meanwhile also moves it: then the reset is needless, and harmless.
            let before = try await slaPolicies.policy(id: id, on: connection)
            let saved = try await slaPolicies.save(id: id, draft, precondition: precondition, on: connection)
            try await EventStore(logger: logger).record(
                .slaPolicyUpdated, actor: principal, data: ["policy_id": saved.id.lowercased, "version": saved.version], on: connection)
            // Its tickets' running clocks follow its targets and calendar as they now stand; a new name
            // or default flag moves none, so their versions (agents' ETags) stay.
            let unchanged = saved.movesNoClock(since: before) && saved.version == before.version + 1
            let reset = unchanged ? nil : try await slaPolicies.requestClockReset(.policy(saved.id), on: connection)
            return (saved, reset)
        }
        if let reset { await slaPolicies.finishClockReset(reset, in: database) }
        tagVersion(policy.version)
        return .ok(.init(body: .json(.init(policy))))
    }

    func deleteSlaPolicy(_ input: Operations.DeleteSlaPolicy.Input) async throws -> Operations.DeleteSlaPolicy.Output {
        let id = input.path.policyId.uuid
        let principal = try principal
        try await database.withTransaction { connection in
            guard try await slaPolicies.delete(id: id, on: connection) else { throw SLAPolicyStore.notFound(id) }
            try await EventStore(logger: logger).record(.slaPolicyDeleted, actor: principal, data: ["policy_id": id.lowercased], on: connection)
        }
        return .noContent(.init())
    }
}

extension SLAPolicyDraft {
    init(_ body: Components.Schemas.SlaPolicyInput) throws {
        self.init(
            name: body.name,
            calendarID: body.calendarId.uuid,
            warningFraction: body.warningFraction ?? 0.75,
            isDefault: body.isDefault ?? false,
            targets: try body.targets.map { target in
                SLAPolicy.Target(
                    priority: try Ticket.enumeration(target.priority.rawValue),
                    channel: try target.channel.map { try Ticket.enumeration($0.rawValue) },
                    firstResponseMinutes: target.firstResponseMinutes, nextResponseMinutes: target.nextResponseMinutes,
                    resolutionMinutes: target.resolutionMinutes)
            })
        let problems = problems()
        if !problems.isEmpty { throw Problem.validationFailed(problems) }
    }
}

extension Components.Schemas.SlaPolicy {
    init(_ policy: SLAPolicy) {
        self.init(
            id: policy.id.resourceID, name: policy.name, calendarId: policy.calendarID.resourceID, warningFraction: policy.warningFraction,
            isDefault: policy.isDefault,
            targets: policy.targets.map { target in
                .init(priority: .init(rawValue: target.priority.rawValue)!, channel: target.channel.map { .init(rawValue: $0.rawValue)! },
                      firstResponseMinutes: target.firstResponseMinutes, nextResponseMinutes: target.nextResponseMinutes,
                      resolutionMinutes: target.resolutionMinutes)
            },
            version: policy.version, createdAt: policy.createdAt, updatedAt: policy.updatedAt)
    }
}
