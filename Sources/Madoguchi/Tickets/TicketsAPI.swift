import Foundation
import HTTPTypes
import MadoguchiAPI

extension APIHandler {
    func listTickets(_ input: Operations.ListTickets.Input) async throws -> Operations.ListTickets.Output {
        let query = input.query
        if query.unassigned == true, query.assigneeId != nil {
            throw Problem.invalidParameter("unassigned", "cannot be combined with assignee_id")
        }
        let limit = try PageCursor.limit(query.limit)
        let filter = TicketFilter(
            statuses: (query.status ?? []).compactMap { Ticket.Status(rawValue: $0.rawValue) },
            assigneeID: query.assigneeId?.uuid,
            unassignedOnly: query.unassigned ?? false,
            customerID: query.customerId?.uuid,
            awaitingReply: query.awaitingReply,
            slaStates: (query.slaState ?? []).compactMap { Ticket.SLAState(rawValue: $0.rawValue) },
            number: query.number,
            queue: query.queue,
            priorities: (query.priority ?? []).compactMap { Ticket.Priority(rawValue: $0.rawValue) },
            channels: (query.channel ?? []).compactMap { Channel(rawValue: $0.rawValue) },
            category: query.category,
            tag: query.tag)
        let sort = query.sort?.rawValue ?? (query.awaitingReply == true ? TicketOrder.longestWaiting.rawValue : "newest")
        if let order = TicketOrder(rawValue: sort) {
            return try await listTickets(filter, in: order, cursor: query.cursor, limit: limit)
        }
        let before = try query.cursor.map { cursor -> Int64 in
            guard let number = Int64(try PageCursor.decode(cursor, count: 1)[0]) else { throw PageCursor.invalid }
            return number
        }
        // One row more than asked tells whether there is a next page without a count query.
        var page = try await database.withConnection {
            try await tickets.tickets(matching: filter, before: before, limit: limit + 1, on: $0)
        }
        var nextCursor: String?
        if page.count > limit {
            page.removeLast()
            nextCursor = page.last.map { PageCursor.encode([String($0.number)]) }
        }
        PageCursor.setLinkHeader(nextCursor: nextCursor)
        return .ok(.init(body: .json(.init(items: page.map(Components.Schemas.Ticket.init), nextCursor: nextCursor))))
    }

    /// A list in one of the time orders, with a cursor of the time and the number.
    private func listTickets(_ filter: TicketFilter, in order: TicketOrder, cursor: String?, limit: Int) async throws -> Operations.ListTickets.Output {
        let after = try cursor.map { cursor -> TimePosition in
            let parts = try PageCursor.decode(cursor, count: 3)
            // A cursor names its order: one from another listing would start the page at a wrong place.
            guard parts[0] == order.rawValue, let microseconds = PageCursor.microseconds(parts[1]), let number = Int64(parts[2]) else { throw PageCursor.invalid }
            return TimePosition(microseconds: microseconds, number: number)
        }
        var page = try await database.withConnection {
            try await tickets.tickets(matching: filter, order: order, after: after, limit: limit + 1, on: $0)
        }
        var nextCursor: String?
        if page.count > limit {
            page.removeLast()
            nextCursor = page.last.map { PageCursor.encode([order.rawValue, String($0.position.microseconds), String($0.position.number)]) }
        }
        PageCursor.setLinkHeader(nextCursor: nextCursor)
        return .ok(.init(body: .json(.init(items: page.map { Components.Schemas.Ticket($0.ticket) }, nextCursor: nextCursor))))
    }

    func getTicket(_ input: Operations.GetTicket.Input) async throws -> Operations.GetTicket.Output {
        let id = input.path.ticketId.uuid
        guard let ticket = try await database.withConnection({ try await tickets.ticket(id: id, on: $0) }) else {
            throw Problem.notFound("There is no ticket \(id.uuidString.lowercased()).")
        }
        RequestScope.current?.setResponseHeader(.eTag, ticket.entityTag)
        if let ifNoneMatch = input.headers.ifNoneMatch, Self.entityTags(ifNoneMatch, match: ticket.entityTag) {
            return .notModified(.init())
        }
        return .ok(.init(body: .json(.init(ticket))))
    }

    func listTicketMessages(_ input: Operations.ListTicketMessages.Input) async throws -> Operations.ListTicketMessages.Output {
        let ticketID = input.path.ticketId.uuid
        let limit = try PageCursor.limit(input.query.limit)
        let after = try input.query.cursor.map { cursor -> UUID in
            guard let id = UUID(uuidString: try PageCursor.decode(cursor, count: 1)[0]) else { throw PageCursor.invalid }
            return id
        }
        let page = try await database.withConnection { connection -> [Message]? in
            guard try await tickets.ticket(id: ticketID, on: connection) != nil else { return nil }
            let messages = try await tickets.messages(ticketID: ticketID, after: after, limit: limit + 1, on: connection)
            // An empty page after a cursor: the end, or a cursor from another ticket's timeline, which
            // must not read as "no more messages".
            if messages.isEmpty, let after, try await !tickets.hasMessage(after, onTicket: ticketID, on: connection) {
                throw Problem.invalidParameter("cursor", "belongs to another ticket's messages; start this ticket's from its first page")
            }
            return messages
        }
        guard var messages = page else {
            throw Problem.notFound("There is no ticket \(ticketID.uuidString.lowercased()).")
        }
        var nextCursor: String?
        if messages.count > limit {
            messages.removeLast()
            nextCursor = messages.last.map { PageCursor.encode([$0.id.uuidString]) }
        }
        PageCursor.setLinkHeader(nextCursor: nextCursor)
        return .ok(.init(body: .json(.init(items: messages.map(Components.Schemas.Message.init), nextCursor: nextCursor))))
    }

    /// RFC 9110 §13.1.2: `*` or any listed tag (weak comparison) matches.
    static func entityTags(_ header: String, match tag: String) -> Bool {
        header.split(separator: ",").contains { candidate in
            let candidate = candidate.trimmingCharacters(in: .whitespaces)
            return candidate == "*" || candidate == tag || candidate == "W/" + tag
        }
    }
}

extension Components.Schemas.Ticket {
    init(_ ticket: Ticket) {
        self.init(
            id: ticket.id.resourceID,
            number: ticket.number,
            subject: ticket.subject,
            status: .init(rawValue: ticket.status.rawValue)!,
            priority: .init(rawValue: ticket.priority.rawValue)!,
            priorityReason: ticket.priorityReason,
            routingReason: ticket.routingReason,
            requiredSkill: ticket.requiredSkill,
            channel: .init(rawValue: ticket.channel.rawValue)!,
            customerId: ticket.customerID.resourceID,
            assigneeId: ticket.assigneeID.resourceID,
            claim: ticket.claim.map { .init(agentId: $0.agentID.resourceID, expiresAt: $0.expiresAt) },
            queue: ticket.queue,
            category: ticket.category,
            tags: ticket.tags,
            relatedTicketId: ticket.relatedTicketID.resourceID,
            mergedInto: ticket.mergedInto.resourceID,
            mergedAt: ticket.mergedAt,
            version: ticket.version,
            lastCustomerMessageAt: ticket.lastCustomerMessageAt,
            awaitingReplySince: ticket.awaitingReplySince,
            lastRespondedAt: ticket.lastRespondedAt,
            slaPolicyId: ticket.slaPolicyID.resourceID,
            firstResponseDueAt: ticket.firstResponseDueAt,
            nextResponseDueAt: ticket.nextResponseDueAt,
            resolutionDueAt: ticket.resolutionDueAt,
            responseDueAt: ticket.responseDueAt,
            slaState: ticket.slaState.map { .init(rawValue: $0.rawValue)! },
            createdAt: ticket.createdAt,
            updatedAt: ticket.updatedAt)
    }
}

extension Components.Schemas.Message {
    init(_ message: Message) {
        self.init(
            id: message.id.resourceID,
            ticketId: message.ticketID.resourceID,
            direction: .init(rawValue: message.direction.rawValue)!,
            channel: .init(rawValue: message.channel.rawValue)!,
            classification: .init(rawValue: message.classification.rawValue)!,
            customerId: message.customerID.resourceID,
            authorAgentId: message.authorAgentID.resourceID,
            from: message.from,
            to: message.to,
            subject: message.subject,
            bodyText: message.bodyText,
            bodyHtml: message.bodyHTML,
            quotedText: message.quotedText,
            visibleText: message.visibleText,
            emailMessageId: message.emailMessageID,
            inReplyTo: message.inReplyTo,
            threadingReason: message.threadingReason,
            forwardedBy: message.forwardedBy.flatMap { forward in
                guard let agent = forward["agent_id"].flatMap(UUID.init(uuidString:)), let address = forward["address"] else { return nil }
                return .init(agentId: agent.resourceID, address: address)
            },
            relayedBy: message.relayedBy,
            attachments: message.attachments.map { attachment in
                .init(
                    id: attachment.id.resourceID,
                    filename: attachment.filename,
                    mediaType: attachment.mediaType,
                    size: attachment.size,
                    sha256: attachment.sha256.lowercaseHex,
                    contentId: attachment.contentID,
                    inline: attachment.inline,
                    contains: attachment.contained.isEmpty ? nil : attachment.contained.map {
                        .init(filename: $0.filename, mediaType: $0.mediaType, size: $0.size)
                    })
            },
            links: message.links.isEmpty ? nil : message.links.compactMap { link in
                link["url"].map { .init(url: $0, filename: link["filename"], mediaType: link["media_type"]) }
            },
            delivery: message.delivery.flatMap { delivery in
                delivery["status"].map {
                    .init(status: $0, errorCode: delivery["error_code"], response: delivery["response"], error: delivery["error"],
                          updatedAt: delivery["updated_at"].flatMap { try? Date($0, strategy: .iso8601) })
                }
            },
            withdrawnAt: message.withdrawnAt,
            sentAt: message.sentAt,
            createdAt: message.createdAt)
    }
}
