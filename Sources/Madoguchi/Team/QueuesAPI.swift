import Foundation
import MadoguchiAPI

/// `/v1/queues`: the team's inboxes, how their tickets find an agent, and the SLA policy they carry.
extension APIHandler {
    var queues: QueueStore { QueueStore(logger: logger) }

    func listQueues(_ input: Operations.ListQueues.Input) async throws -> Operations.ListQueues.Output {
        let all = try await database.withConnection { try await queues.list(on: $0) }
        return .ok(.init(body: .json(.init(items: all.map(Components.Schemas.Queue.init)))))
    }

    func getQueue(_ input: Operations.GetQueue.Input) async throws -> Operations.GetQueue.Output {
        let queue = try await database.withConnection { try await queues.queue(input.path.queueName, on: $0) }
        tagVersion(queue.version)
        return .ok(.init(body: .json(.init(queue))))
    }

    func createQueue(_ input: Operations.CreateQueue.Input) async throws -> Operations.CreateQueue.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        try Self.checkQueueName(body.name)
        try Self.checkDescription(body.description)
        let queue = try await database.withTransaction { connection in
            let queue = try await queues.create(
                name: body.name, description: body.description ?? "", slaPolicyID: body.slaPolicyId?.uuid,
                autoAssign: body.autoAssign.map { WorkQueue.AutoAssign(rawValue: $0.rawValue)! } ?? .off, on: connection)
            try await EventStore(logger: logger).record(.queueCreated, actor: principal, data: ["queue": queue.name], on: connection)
            return queue
        }
        if queue.autoAssign != .off { assignment?.pull() }
        tagVersion(queue.version)
        return .created(.init(body: .json(.init(queue))))
    }

    func updateQueue(_ input: Operations.UpdateQueue.Input) async throws -> Operations.UpdateQueue.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        try Self.checkDescription(body.description)
        if body.slaPolicyId != nil, body.defaultSlaPolicy == true {
            throw Problem.validationFailed([.init(pointer: "/default_sla_policy", message: "cannot be combined with sla_policy_id")])
        }
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let name = input.path.queueName
        let queue = try await database.withTransaction { connection in
            try await precondition.check("Queue \(name)") { try await queues.lockedVersion(name, on: connection) }
            let before = try await queues.lockedVersion(name, on: connection)
            let queue = try await queues.update(
                input.path.queueName, description: body.description, slaPolicyID: body.slaPolicyId?.uuid,
                clearPolicy: body.defaultSlaPolicy ?? false, autoAssign: body.autoAssign.map { WorkQueue.AutoAssign(rawValue: $0.rawValue)! },
                on: connection)
            // An empty change writes nothing (`QueueStore.update`), and announces nothing either.
            if Int64(queue.version) != before {
                try await EventStore(logger: logger).record(
                    .queueUpdated, actor: principal, data: ["queue": queue.name, "version": queue.version], on: connection)
            }
            return queue
        }
        if queue.autoAssign != .off { assignment?.pull() }
        tagVersion(queue.version)
        return .ok(.init(body: .json(.init(queue))))
    }

    func deleteQueue(_ input: Operations.DeleteQueue.Input) async throws -> Operations.DeleteQueue.Output {
        let principal = try principal
        let name = input.path.queueName
        try await database.withTransaction { connection in
            try await queues.delete(name, on: connection)
            try await EventStore(logger: logger).record(.queueDeleted, actor: principal, data: ["queue": name], on: connection)
        }
        return .noContent(.init())
    }

    /// The generated decoder does not check patterns or lengths.
    private static func checkQueueName(_ name: String) throws {
        guard name.wholeMatch(of: /[a-z0-9_-]{1,64}/) != nil else {
            throw Problem.validationFailed([.init(pointer: "/name", message: "1 to 64 lower-case letters, digits, _ and -")])
        }
    }

    private static func checkDescription(_ description: String?) throws {
        if let description, description.count > 2000 {
            throw Problem.validationFailed([.init(pointer: "/description", message: "at most 2000 characters")])
        }
    }
}

extension Components.Schemas.Queue {
    init(_ queue: WorkQueue) {
        self.init(
            name: queue.name, description: queue.description, slaPolicyId: queue.slaPolicyID.resourceID,
            calendarId: queue.calendarID.resourceID, autoAssign: .init(rawValue: queue.autoAssign.rawValue)!,
            members: queue.members.map(\.resourceID), waiting: queue.waiting, version: queue.version, createdAt: queue.createdAt,
            updatedAt: queue.updatedAt)
    }
}
