import Foundation
import PostgresNIO

/// What the intake does to tickets: open one (rules applied in the same transaction), or lock the one
/// a message continues, reopening it if it was waiting or solved. Closed tickets stay closed; the
/// message starts a new ticket linked to the old one.
extension ConversationIntake {
    struct Target: Sendable {
        var id: UUID
        var number: Int64
        var customerID: UUID
        var status: Ticket.Status
    }

    /// `recipients`: where the message was sent (To and Cc of a mail), for rules that route by it.
    func open(
        customerID: UUID, channel: Channel, subject: String, body: String, relatedTo related: UUID?, tags: [String] = [],
        recipients: [String] = [], on connection: PostgresConnection
    ) async throws -> Target {
        let threadSubject = ThreadSubject.reduce(subject).key
        let (id, number, facts, rules) = try await tickets.open(
            customerID: customerID, channel: channel, subject: subject, threadSubject: threadSubject, relatedTo: related, tags: tags, on: connection)
        let target = Target(id: id, number: number, customerID: customerID, status: .new)
        var data: [String: Any] = ["channel": channel.rawValue, "number": target.number]
        if let related { data["related_ticket_id"] = related.lowercased }
        try await events.record(.ticketCreated, ticketID: target.id, customerID: customerID, actor: nil, data: data, on: connection)
        try await RuleStore(logger: logger).apply(
            rules, ticketID: target.id, customerID: customerID, channel: channel, facts: facts, subject: subject, body: body,
            recipients: recipients, on: connection)
        return target
    }

    /// The ticket a message continues, row-locked for the rest of the transaction; nil when there is
    /// none. When the customer writes (`customerWrites`; an auto-reply does not), the same statement
    /// moves the ticket's clocks and reopens it if it was waiting or solved: the customer waits for us
    /// from now unless they already were (see migration 0024 for what starts and ends the wait). A
    /// closed ticket is left as it is: the customer's message starts a new ticket linked to it. The
    /// returned status is the ticket's as it now stands. A ticket merged into another is that other.
    ///
    /// One round trip for what every continued conversation needs: a lock and then an update took two.
    func lock(_ id: UUID, customerWrites: Bool, on connection: PostgresConnection) async throws -> Target? {
        try await lock(id, customerWrites: customerWrites, hops: 0, on: connection)
    }

    private func lock(_ id: UUID, customerWrites: Bool, hops: Int, on connection: PostgresConnection) async throws -> Target? {
        guard let (id, number, customerID, before, now, mergedInto) = try await tickets.lockForMessage(id, customerWrites: customerWrites, on: connection) else {
            return nil
        }
        // Merged while this waited for its lock (the pointer was read before the merge committed):
        // the ticket it went into takes the message, not a new one opened beside a closed duplicate.
        if let mergedInto, hops < 3 { return try await lock(mergedInto, customerWrites: customerWrites, hops: hops + 1, on: connection) }
        if now != before {
            try await events.record(
                .ticketReopened, ticketID: id, customerID: customerID, actor: nil,
                data: ["from": before.rawValue, "to": now.rawValue, "reason": "customer_wrote"], on: connection)
        }
        return Target(id: id, number: number, customerID: customerID, status: now)
    }

    /// The open ticket that already continues closed ticket `closedID` (one a customer's earlier
    /// message, or a reply that did not reach them, opened linked to it), row-locked with the
    /// customer's message taken as for `lock`; nil when there is none. Without it, every message on
    /// the closed thread opened one more ticket beside the follow-up, and two agents answered the
    /// same customer (二重返信) each on their own. The closed ticket's own customer's only: a ticket
    /// opened for someone else who wrote into its thread (`token-foreign-sender`) is linked to it
    /// too, and the customer's next message went onto that stranger's ticket.
    func openFollowUp(of closedID: UUID, on connection: PostgresConnection) async throws -> Target? {
        let rows = try await connection.run("""
            SELECT follow.id FROM tickets follow, tickets closed
            WHERE closed.id = \(closedID) AND follow.related_ticket_id = closed.id
              AND follow.status <> 'closed' AND follow.merged_into IS NULL
              AND customer_survivor(follow.customer_id) = customer_survivor(closed.customer_id)
            ORDER BY follow.number DESC LIMIT 1
            """, logger: logger)
        var found: UUID?
        for try await id in rows.decode(UUID.self) { found = id }
        guard let found, let locked = try await lock(found, customerWrites: true, on: connection), locked.status != .closed else { return nil }
        return locked
    }

    /// Where a message of an ongoing conversation goes: on `candidate`, row-locked, with `reason`; if
    /// there is no candidate, a new ticket (`new-ticket`); if the candidate is closed, the open ticket
    /// that continues it (`follow-up`), else a new ticket linked to it (`reopened-closed`).
    func continueConversation(
        _ candidate: UUID?, reason: String, customerID: UUID, channel: Channel, subject: String?, body: String, tags: [String],
        recipients: [String], on connection: PostgresConnection
    ) async throws -> (ticket: Target, reason: String) {
        var related: UUID?
        if let candidate, let locked = try await lock(candidate, customerWrites: true, on: connection) {
            guard locked.status == .closed else { return (locked, reason) }
            if let followUp = try await openFollowUp(of: locked.id, on: connection) { return (followUp, "follow-up") }
            related = locked.id
        }
        let firstLine = body.split(whereSeparator: \.isNewline).first.map { String($0.prefix(60)) } ?? ""
        let title = firstLine.trimmingCharacters(in: .whitespaces).isEmpty ? channel.conversationTitle : firstLine
        let ticket = try await open(
            customerID: customerID, channel: channel, subject: subject ?? title, body: body, relatedTo: related, tags: tags,
            recipients: recipients, on: connection)
        return (ticket, related == nil ? "new-ticket" : "reopened-closed")
    }
}

extension Channel {
    /// A ticket's subject when a conversation's first message has no text to take one from.
    var conversationTitle: String {
        switch self {
        case .sms: "SMS"
        case .chat: "Chat"
        case .email: "(no subject)"
        case .webform: "Web form"
        }
    }
}
