import Foundation
import HTTPTypes
import MadoguchiAPI

/// Claims, the queue, ticket changes and notes. All need a key that acts for an agent.
extension APIHandler {
    var work: TicketWork { TicketWork(database: database, logger: logger, lease: claimLease) }

    /// The agent behind an agent or supervisor key.
    var actingAgent: (Principal, UUID) {
        get throws {
            let principal = try principal
            guard let agentID = principal.agentID else {
                throw Problem(.forbidden, status: .forbidden, title: "Forbidden", detail: "This key does not act for an agent.")
            }
            return (principal, agentID)
        }
    }

    func claimTicket(_ input: Operations.ClaimTicket.Input) async throws -> Operations.ClaimTicket.Output {
        let (principal, agentID) = try actingAgent
        let ticket = try await work.claim(ticketID: input.path.ticketId.uuid, by: principal, agentID: agentID)
        RequestScope.current?.setResponseHeader(.eTag, ticket.entityTag)
        return .ok(.init(body: .json(.init(ticket))))
    }

    func releaseClaim(_ input: Operations.ReleaseClaim.Input) async throws -> Operations.ReleaseClaim.Output {
        let (principal, agentID) = try actingAgent
        let ticket = try await work.release(ticketID: input.path.ticketId.uuid, by: principal, agentID: agentID)
        RequestScope.current?.setResponseHeader(.eTag, ticket.entityTag)
        return .ok(.init(body: .json(.init(ticket))))
    }

    func claimNextTicket(_ input: Operations.ClaimNextTicket.Input) async throws -> Operations.ClaimNextTicket.Output {
        let (principal, agentID) = try actingAgent
        guard let ticket = try await work.claimNext(by: principal, agentID: agentID) else {
            return .noContent(.init())
        }
        RequestScope.current?.setResponseHeader(.eTag, ticket.entityTag)
        return .ok(.init(body: .json(.init(ticket))))
    }

    func updateTicket(_ input: Operations.UpdateTicket.Input) async throws -> Operations.UpdateTicket.Output {
        let (principal, agentID) = try actingAgent
        guard let ifMatch = input.headers.ifMatch else {
            throw Problem(
                .preconditionRequired, status: .preconditionRequired, title: "Precondition required",
                detail: "Send the ticket's ETag in If-Match, so that a change made since you read it is not overwritten.")
        }
        guard let condition = IfMatch(ifMatch) else {
            throw Problem.invalidParameter("If-Match", "'\(ifMatch)' is not an entity tag, a list of them, or * (the ticket's ETag looks like \"3\" or \"3.ok\")")
        }
        guard case .json(let body) = input.body else { throw Problem.internalError }
        if body.unassign == true, body.assigneeId != nil {
            throw Problem.validationFailed([.init(pointer: "/unassign", message: "cannot be combined with assignee_id")])
        }
        // The generated decoder does not enforce maxItems/maxLength, and tags have no CHECK of their own.
        if let tags = body.tags, tags.count > 50 || tags.contains(where: { $0.count > 100 }) {
            throw Problem.validationFailed([.init(pointer: "/tags", message: "at most 50 tags of at most 100 characters each")])
        }
        if body.category == Ticket.noCategory {
            throw Problem.validationFailed([.init(pointer: "/category", message: "\(Ticket.noCategory) is how reports name no category; send \"\" to clear it")])
        }
        let changes = TicketChanges(
            status: body.status.flatMap { Ticket.Status(rawValue: $0.rawValue) },
            priority: body.priority.flatMap { Ticket.Priority(rawValue: $0.rawValue) },
            queue: body.queue,
            category: body.category,
            tags: body.tags,
            assigneeID: body.assigneeId?.uuid,
            unassign: body.unassign ?? false,
            noReplyNeeded: body.noReplyNeeded ?? false)
        let ticket = try await work.update(
            ticketID: input.path.ticketId.uuid, matching: condition, changes: changes, by: principal, agentID: agentID)
        RequestScope.current?.setResponseHeader(.eTag, ticket.entityTag)
        return .ok(.init(body: .json(.init(ticket))))
    }

    func mergeTicket(_ input: Operations.MergeTicket.Input) async throws -> Operations.MergeTicket.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let survivor = try await work.merge(input.path.ticketId.uuid, into: body.intoTicketId.uuid, comment: body.comment, by: principal, agentID: agentID)
        RequestScope.current?.setResponseHeader(.eTag, survivor.entityTag)
        return .ok(.init(body: .json(.init(survivor))))
    }

    func addNote(_ input: Operations.AddNote.Input) async throws -> Operations.AddNote.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        guard !body.body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Problem.validationFailed([.init(pointer: "/body", message: "a note needs some text")])
        }
        guard body.body.count <= 20_000, (body.mentions ?? []).count <= 50 else {
            throw Problem.validationFailed([.init(pointer: "/body", message: "a note holds at most 20,000 characters and 50 mentions")])
        }
        // A handover note (申し送り) retried after a lost answer would otherwise stand twice.
        let replay = try RequestReplay(input.headers.idempotencyKey, principal: principal, operation: "addNote",
                                       target: input.path.ticketId.uuid, body: body, logger: logger)
        let note = try await work.addNote(
            ticketID: input.path.ticketId.uuid, body: body.body, mentions: (body.mentions ?? []).map(\.uuid), by: principal, agentID: agentID,
            replay: replay)
        return .created(.init(body: .json(.init(note))))
    }
}
