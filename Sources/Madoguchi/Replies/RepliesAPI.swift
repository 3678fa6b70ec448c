import Foundation
import MadoguchiAPI
import MadoguchiMail

extension APIHandler {
    var replies: ReplyDesk {
        ReplyDesk(database: database, logger: logger, warningWords: warningWords, messageIDDomain: delivery.mailFrom?.asciiDomain ?? "madoguchi")
    }

    /// The reply as the API shows it: with its files and, once sent, its delivery — read in one
    /// snapshot, so a delivery the worker is recording is seen whole or not at all.
    func replyResource(_ reply: Reply) async throws -> Components.Schemas.Reply {
        let store = ReplyStore(logger: logger)
        let (current, attachments, delivery) = try await database.withTransaction { connection in
            try await connection.perform("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            let current = try await store.reply(id: reply.id, on: connection)
            return (current, try await store.attachments(of: reply.id, on: connection), try await store.delivery(of: current, on: connection))
        }
        return Components.Schemas.Reply(current, attachments: attachments, delivery: delivery)
    }

    func listTicketReplies(_ input: Operations.ListTicketReplies.Input) async throws -> Operations.ListTicketReplies.Output {
        let ticketID = input.path.ticketId.uuid
        let filter = ReplyList.Filter(ticketID: ticketID, states: (input.query.state ?? []).compactMap { Reply.State(rawValue: $0.rawValue) })
        guard let page = try await replyPage(filter, cursor: input.query.cursor, limit: input.query.limit) else {
            throw Problem.notFound("There is no ticket \(ticketID.lowercased).")
        }
        PageCursor.setLinkHeader(nextCursor: page.nextCursor)
        return .ok(.init(body: .json(page)))
    }

    func listReplies(_ input: Operations.ListReplies.Input) async throws -> Operations.ListReplies.Output {
        let filter = ReplyList.Filter(states: (input.query.state ?? []).compactMap { Reply.State(rawValue: $0.rawValue) },
                                      authorAgentID: input.query.authorAgentId?.uuid, deliveryHeld: input.query.deliveryState == .held)
        guard let page = try await replyPage(filter, cursor: input.query.cursor, limit: input.query.limit) else { throw Problem.internalError }
        PageCursor.setLinkHeader(nextCursor: page.nextCursor)
        return .ok(.init(body: .json(page)))
    }

    /// One page of replies, each with its files and delivery, read in one snapshot (as
    /// `replyResource` reads one); nil when the filter names a ticket that does not exist.
    private func replyPage(_ filter: ReplyList.Filter, cursor: String?, limit: Int?) async throws -> Components.Schemas.ReplyPage? {
        let limit = try PageCursor.limit(limit)
        let after = try cursor.map { cursor -> ReplyList.Position in
            let parts = try PageCursor.decode(cursor, count: 2)
            guard let microseconds = PageCursor.microseconds(parts[0]), let id = UUID(uuidString: parts[1]) else { throw PageCursor.invalid }
            return ReplyList.Position(microseconds: microseconds, id: id)
        }
        let store = ReplyStore(logger: logger)
        let read = try await database.withTransaction { connection -> [(Components.Schemas.Reply, ReplyList.Position)]? in
            try await connection.perform("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            if let ticketID = filter.ticketID, try await tickets.ticket(id: ticketID, on: connection) == nil { return nil }
            // One row more than asked tells whether there is a next page.
            let page = try await ReplyList(logger: logger).replies(matching: filter, after: after, limit: limit + 1, on: connection)
            let replies = page.map(\.reply)
            // Files and deliveries of the whole page in a statement each (read reply by reply, a
            // page of 200 was 400 statements more).
            let files = try await store.attachments(ofReplies: replies.map(\.id), on: connection)
            let deliveries = try await store.deliveries(of: replies, on: connection)
            return page.map { (Components.Schemas.Reply($0.reply, attachments: files[$0.reply.id] ?? [], delivery: deliveries[$0.reply.id]), $0.position) }
        }
        guard var items = read else { return nil }
        var nextCursor: String?
        if items.count > limit {
            items.removeLast()
            nextCursor = items.last.map { PageCursor.encode([String($0.1.microseconds), $0.1.id.uuidString]) }
        }
        return .init(items: items.map(\.0), nextCursor: nextCursor)
    }

    func createReply(_ input: Operations.CreateReply.Input) async throws -> Operations.CreateReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        try ReplyDesk.checkSubject(body.subject)
        let draft = ReplyDesk.Draft(
            body: body.body, subject: body.subject, channel: body.channel.flatMap { Channel(rawValue: $0.rawValue) }, recipients: body.recipients)
        let replay = try RequestReplay(input.headers.idempotencyKey, principal: principal, operation: "createReply",
                                       target: input.path.ticketId.uuid, body: body, logger: logger)
        let reply = try await replies.create(ticketID: input.path.ticketId.uuid, draft: draft, by: principal, agentID: agentID, replay: replay)
        return .created(.init(body: .json(try await replyResource(reply))))
    }

    func getReply(_ input: Operations.GetReply.Input) async throws -> Operations.GetReply.Output {
        let reply = try await database.withConnection { try await replies.reply(id: input.path.replyId.uuid, on: $0) }
        return .ok(.init(body: .json(try await replyResource(reply))))
    }

    func updateReply(_ input: Operations.UpdateReply.Input) async throws -> Operations.UpdateReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        try ReplyDesk.checkSubject(body.subject)
        let reply = try await replies.update(
            replyID: input.path.replyId.uuid, body: body.body, subject: body.subject, recipients: body.recipients, by: principal, agentID: agentID)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }

    func deleteReply(_ input: Operations.DeleteReply.Input) async throws -> Operations.DeleteReply.Output {
        let (principal, agentID) = try actingAgent
        let replay = try RequestReplay(input.headers.idempotencyKey, principal: principal, operation: "deleteReply",
                                       target: input.path.replyId.uuid, body: [String: String](), logger: logger)
        try await replies.discard(replyID: input.path.replyId.uuid, by: principal, agentID: agentID, replay: replay)
        return .noContent(.init())
    }

    func sendReply(_ input: Operations.SendReply.Input) async throws -> Operations.SendReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let replay = try RequestReplay(input.headers.idempotencyKey, principal: principal, operation: "sendReply",
                                       target: input.path.replyId.uuid, body: body, logger: logger)
        let reply = try await replies.send(
            replyID: input.path.replyId.uuid, lastSeenMessageID: body.lastSeenMessageId?.uuid, confirmUndeliverable: body.confirmUndeliverable ?? false,
            confirmed: Set((body.confirmFindings ?? []).compactMap { SendGuard.Finding.Kind(rawValue: $0.rawValue) }),
            by: principal, agentID: agentID, replay: replay)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }
}

extension Components.Schemas.Reply {
    init(_ reply: Reply, attachments: [ReplyAttachment], delivery: ReplyDelivery?) {
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
            attachments: attachments.map {
                .init(id: $0.id.resourceID, filename: $0.filename, mediaType: $0.mediaType, size: $0.size,
                      sha256: $0.sha256.lowercaseHex)
            },
            delivery: delivery.map(Components.Schemas.ReplyDelivery.init),
            version: reply.version,
            createdAt: reply.createdAt,
            updatedAt: reply.updatedAt,
            sentAt: reply.sentAt,
            confirmedUndeliverable: reply.confirmedUndeliverable)
    }
}

extension APIHandler {
    func submitReply(_ input: Operations.SubmitReply.Input) async throws -> Operations.SubmitReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let reply = try await replies.submit(
            replyID: input.path.replyId.uuid, lastSeenMessageID: body.lastSeenMessageId?.uuid, confirmUndeliverable: body.confirmUndeliverable ?? false,
            confirmed: Set((body.confirmFindings ?? []).compactMap { SendGuard.Finding.Kind(rawValue: $0.rawValue) }),
            by: principal, agentID: agentID)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }

    func approveReply(_ input: Operations.ApproveReply.Input) async throws -> Operations.ApproveReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        // A supervisor's client retrying after a lost answer would otherwise be told the reply is no
        // longer awaiting approval, which reads as a failure though it went.
        let replay = try RequestReplay(input.headers.idempotencyKey, principal: principal, operation: "approveReply",
                                       target: input.path.replyId.uuid, body: body, logger: logger)
        let reply = try await replies.approve(
            replyID: input.path.replyId.uuid, version: body.version, lastSeenMessageID: body.lastSeenMessageId?.uuid, confirmUndeliverable: body.confirmUndeliverable ?? false,
            confirmed: Set((body.confirmFindings ?? []).compactMap { SendGuard.Finding.Kind(rawValue: $0.rawValue) }),
            by: principal, agentID: agentID, replay: replay)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }

    func returnReply(_ input: Operations.ReturnReply.Input) async throws -> Operations.ReturnReply.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        guard !body.comment.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Problem.validationFailed([.init(pointer: "/comment", message: "say what to change")])
        }
        let reply = try await replies.returnToAuthor(
            replyID: input.path.replyId.uuid, version: body.version, comment: body.comment, by: principal, agentID: agentID)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }
}

extension Components.Schemas.ReplyDelivery {
    init(_ delivery: ReplyDelivery) {
        self.init(
            state: .init(rawValue: delivery.state) ?? .queued, attempts: delivery.attempts, nextAttemptAt: delivery.nextAttemptAt,
            lastError: delivery.lastError, heldReason: delivery.heldReason, relayResponse: delivery.relayResponse, provider: delivery.provider,
            providerMessageId: delivery.providerMessageID, sentAt: delivery.sentAt,
            recipients: delivery.recipients.map { recipient, result in
                // A bounce names whom the mail the relay took did not reach, and why; a provider's
                // report that a text it took failed, likewise.
                let failure = ["bounced", "failed"].contains(delivery.state)
                    ? delivery.notices.last { $0.action == "failed" && IdentityValue.comparable($0.recipient) == IdentityValue.comparable(recipient) } : nil
                if let failure {
                    return .init(recipient: recipient, status: delivery.state == "bounced" ? .bounced : .failed, reply: failure.diagnostic ?? result?.reply)
                }
                return .init(recipient: recipient, status: .init(rawValue: result?.status.rawValue ?? "pending") ?? .pending, reply: result?.reply)
            },
            alternatives: delivery.alternatives.isEmpty ? nil : delivery.alternatives.map { .init(kind: $0.kind, value: $0.value) },
            notices: delivery.notices.isEmpty ? nil : delivery.notices.map {
                .init(recipient: $0.recipient, action: $0.action, status: $0.status, diagnostic: $0.diagnostic,
                      reportedAt: ISO8601DateFormatter().date(from: $0.reportedAt) ?? Date())
            })
    }
}

extension APIHandler {
    func addReplyAttachment(_ input: Operations.AddReplyAttachment.Input) async throws -> Operations.AddReplyAttachment.Output {
        let (principal, agentID) = try actingAgent
        guard case .json(let body) = input.body else { throw Problem.internalError }
        var errors: [Problem.FieldError] = []
        let name = body.filename.trimmingCharacters(in: .whitespacesAndNewlines)
        if name.isEmpty || name.contains("\u{0}") { errors.append(.init(pointer: "/filename", message: "is blank or contains NUL")) }
        // Trimmed of line breaks too: "application/pdf\n" passed the pattern ($ matches before a final
        // line break), was stored, and failed only at send, when the mail composer refused it.
        let mediaType = body.mediaType.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if mediaType.range(of: #"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$"#, options: .regularExpression) == nil {
            errors.append(.init(pointer: "/media_type", message: "is not a media type like application/pdf"))
        }
        // Line breaks and spaces (base64 as mail wraps it) are left out; anything else that is not
        // base64 is refused, not skipped: "@@@@" decoded to nothing, an empty file.
        let content = Data(base64Encoded: String(body.contentBase64.unicodeScalars.filter { !" \t\r\n".unicodeScalars.contains($0) }))
        if content == nil { errors.append(.init(pointer: "/content_base64", message: "is not base64")) }
        // An empty file would satisfy the missing-attachment guard ("請求書を添付しました") with nothing.
        if let content, content.isEmpty { errors.append(.init(pointer: "/content_base64", message: "is empty: a file of 0 bytes")) }
        if let content, content.count > ReplyStore.attachmentLimit {
            errors.append(.init(pointer: "/content_base64", message: "is larger than \(ReplyStore.attachmentLimit) bytes decoded"))
        }
        guard errors.isEmpty, let content else { throw Problem.validationFailed(errors) }
        let reply = try await replies.addAttachment(
            replyID: input.path.replyId.uuid, filename: SafeFileName.clean(name), mediaType: mediaType, content: [UInt8](content),
            by: principal, agentID: agentID)
        return .created(.init(body: .json(try await replyResource(reply))))
    }

    func removeReplyAttachment(_ input: Operations.RemoveReplyAttachment.Input) async throws -> Operations.RemoveReplyAttachment.Output {
        let (principal, agentID) = try actingAgent
        let reply = try await replies.removeAttachment(input.path.attachmentId.uuid, replyID: input.path.replyId.uuid, by: principal, agentID: agentID)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }

    func resolveReplyDelivery(_ input: Operations.ResolveReplyDelivery.Input) async throws -> Operations.ResolveReplyDelivery.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        guard let decision = DeliveryDesk.Decision(rawValue: body.action.rawValue) else { throw Problem.internalError }
        let reply = try await DeliveryDesk(database: database, logger: logger).resolveHeld(
            replyID: input.path.replyId.uuid, decision: decision, comment: body.comment, by: try principal)
        return .ok(.init(body: .json(try await replyResource(reply))))
    }
}
