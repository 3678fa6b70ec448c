import Foundation
import MadoguchiAPI

extension APIHandler {
    var replies: ReplyDesk { ReplyDesk(database: database, logger: logger, warningWords: warningWords) }

    func createReply(_ input: Operations.CreateReply.Input) async throws -> Operations.CreateReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let draft = ReplyDesk.Draft(
            body: body.body, subject: body.subject, channel: body.channel.flatMap { Channel(rawValue: $0.rawValue) }, recipients: body.recipients)
        let reply = try await replies.create(ticketID: input.path.ticketId.uuid, draft: draft, by: principal, agentID: agentID)
        return .created(.init(body: .json(.init(reply))))
    }

    func getReply(_ input: Operations.GetReply.Input) async throws -> Operations.GetReply.Output {
        let reply = try await database.withConnection { try await replies.reply(id: input.path.replyId.uuid, on: $0) }
        return .ok(.init(body: .json(.init(reply))))
    }

    func updateReply(_ input: Operations.UpdateReply.Input) async throws -> Operations.UpdateReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let reply = try await replies.update(
            replyID: input.path.replyId.uuid, body: body.body, subject: body.subject, recipients: body.recipients, by: principal, agentID: agentID)
        return .ok(.init(body: .json(.init(reply))))
    }

    func sendReply(_ input: Operations.SendReply.Input) async throws -> Operations.SendReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let reply = try await replies.send(
            replyID: input.path.replyId.uuid, lastSeenMessageID: body.lastSeenMessageId?.uuid, by: principal, agentID: agentID)
        return .ok(.init(body: .json(.init(reply))))
    }
}

extension Components.Schemas.Reply {
    init(_ reply: Reply) {
        self.init(
            id: reply.id.resourceID,
            ticketId: reply.ticketID.resourceID,
            authorAgentId: reply.authorAgentID.resourceID,
            channel: .init(rawValue: reply.channel.rawValue)!,
            recipients: reply.recipients,
            subject: reply.subject,
            body: reply.body,
            state: .init(rawValue: reply.state.rawValue)!,
            messageId: reply.messageID.resourceID,
            version: reply.version,
            createdAt: reply.createdAt,
            updatedAt: reply.updatedAt,
            sentAt: reply.sentAt)
    }
}

extension APIHandler {
    func submitReply(_ input: Operations.SubmitReply.Input) async throws -> Operations.SubmitReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let reply = try await replies.submit(
            replyID: input.path.replyId.uuid, lastSeenMessageID: body.lastSeenMessageId?.uuid, by: principal, agentID: agentID)
        return .ok(.init(body: .json(.init(reply))))
    }

    func approveReply(_ input: Operations.ApproveReply.Input) async throws -> Operations.ApproveReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let reply = try await replies.approve(
            replyID: input.path.replyId.uuid, lastSeenMessageID: body.lastSeenMessageId?.uuid, by: principal, agentID: agentID)
        return .ok(.init(body: .json(.init(reply))))
    }

    func returnReply(_ input: Operations.ReturnReply.Input) async throws -> Operations.ReturnReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        guard !body.comment.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Problem.validationFailed([.init(pointer: "/comment", message: "say what to change")])
        }
        let reply = try await replies.returnToAuthor(replyID: input.path.replyId.uuid, comment: body.comment, by: principal, agentID: agentID)
        return .ok(.init(body: .json(.init(reply))))
    }
}
