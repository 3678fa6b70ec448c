import Foundation
import PostgresNIO

/// What a `PATCH /v1/tickets/{id}` asks for; nil leaves a field as it is.
struct TicketChanges: Sendable {
    var status: Ticket.Status?
    var priority: Ticket.Priority?
    var queue: String?
    /// An empty string clears the category.
    var category: String?
    var tags: [String]?
    var assigneeID: UUID?
    var unassign = false
    /// 対応不要: the customer's latest message needs no answer (a thank-you, spam, a ticket closed
    /// before anyone answered): the wait ends without a reply, and with it the response clock.
    var noReplyNeeded = false
}

extension TicketWork {
    /// Applies `changes` if the caller read the current version and may change the ticket now.
    /// Nothing changes (and no event is written) when every requested value is already in place.
    /// `condition` is the caller's `If-Match`: the version it read (or `*`).
    func update(ticketID: UUID, matching condition: IfMatch, changes: TicketChanges, by principal: Principal, agentID: UUID) async throws -> Ticket {
        try await database.withTransaction { connection in
            let (ticket, claimLive) = try await lockTicket(ticketID, on: connection)
            guard condition.matches(version: ticket.version) else {
                throw Problem(
                    .preconditionFailed, status: .preconditionFailed, title: "Precondition failed",
                    detail: "If-Match \(condition.description) does not match the ticket's current version \(ticket.entityTag) (a weak tag never does). Read it again before changing it.")
            }
            if let claim = ticket.claim, claimLive, claim.agentID != agentID, principal.role != .supervisor {
                throw await Self.claimHeld(claim, on: connection, logger: logger)
            }

            var recorded: [String: Any] = [:]
            func note<T: Equatable>(_ field: String, _ old: T, _ new: T, _ render: (T) -> Any) {
                if old != new { recorded[field] = ["from": render(old), "to": render(new)] }
            }
            let status = changes.status ?? ticket.status
            if status != ticket.status, !ticket.status.allowedNext.contains(status) {
                var problem = Problem(
                    .invalidTransition, status: .conflict, title: "Invalid status change",
                    detail: "A ticket that is \(ticket.status.rawValue) cannot become \(status.rawValue); "
                        + (ticket.status.allowedNext.isEmpty
                            ? "a closed ticket stays closed."
                            : "it can become \(ticket.status.allowedNext.map(\.rawValue).joined(separator: ", ")).")
                )
                problem.members["allowed"] = .strings(ticket.status.allowedNext.map(\.rawValue))
                throw problem
            }
            let priority = changes.priority ?? ticket.priority
            let queue = changes.queue ?? ticket.queue
            let category = changes.category.map { $0.isEmpty ? nil : $0 } ?? ticket.category
            let tags = changes.tags.map(Self.normalizedTags) ?? ticket.tags
            let assignee = changes.unassign ? nil : (changes.assigneeID ?? ticket.assigneeID)
            let awaitingSince = changes.noReplyNeeded ? nil : ticket.awaitingReplySince
            note("status", ticket.status, status) { $0.rawValue }
            note("priority", ticket.priority, priority) { $0.rawValue }
            note("queue", ticket.queue, queue) { $0 }
            note("category", ticket.category, category) { $0.map { $0 as Any } ?? (NSNull() as Any) }
            note("tags", ticket.tags, tags) { $0 }
            note("assignee_id", ticket.assigneeID, assignee) { $0.map { $0.uuidString.lowercased() as Any } ?? (NSNull() as Any) }
            note("awaiting_reply_since", ticket.awaitingReplySince, awaitingSince) { $0.map { $0.rfc3339UTC as Any } ?? (NSNull() as Any) }
            guard !recorded.isEmpty else { return ticket }
            if let assignee, assignee != ticket.assigneeID, try await !isActive(agent: assignee, on: connection) {
                throw Problem.validationFailed([.init(pointer: "/assignee_id", message: "agent \(assignee.lowercased) was deactivated")])
            }
            // Handed to someone else: a live claim by anyone but the new assignee ends with it, so the
            // old holder can no longer answer, and the new assignee can claim the ticket at once.
            let endedClaim = ticket.claim.flatMap { claim in
                claimLive && assignee != ticket.assigneeID && claim.agentID != assignee ? claim : nil
            }
            // A claim that lapsed is dropped with the hand-over, without an event (it ended when it
            // lapsed): left behind, an unassigned ticket was never auto-assigned again and missing
            // from its queue's waiting count, which both look for no claim at all.
            let dropsClaim = endedClaim != nil || (ticket.claim != nil && !claimLive && assignee != ticket.assigneeID)

            let updated: Ticket
            do {
                // The store reads the statement's rows, and with them any error PostgreSQL reports.
                updated = try await tickets.apply(
                    .init(status: status, priority: priority, queue: queue, category: category, tags: tags, assigneeID: assignee,
                          endsWait: changes.noReplyNeeded, dropsClaim: dropsClaim),
                    to: ticketID, on: connection)
            } catch let error as PSQLError where error.sqlState == .foreignKeyViolation {
                if error.serverInfo?[.constraintName] == "tickets_queue_known" { throw QueueStore.unknownQueue(queue, pointer: "/queue") }
                throw Problem.validationFailed([.init(pointer: "/assignee_id", message: "there is no agent \(assignee?.uuidString.lowercased() ?? "")")])
            }
            // The clocks the change set again (another priority's targets, another queue's policy, a
            // wait ended), named as a calendar or policy edit names them, to the second: a dashboard
            // following the feed recolours the ticket without reading it again.
            for (field, due) in [("first_response_due_at", \Ticket.firstResponseDueAt), ("next_response_due_at", \Ticket.nextResponseDueAt),
                                 ("resolution_due_at", \Ticket.resolutionDueAt)] {
                note(field, ticket[keyPath: due]?.rfc3339UTC, updated[keyPath: due]?.rfc3339UTC) { $0.map { $0 as Any } ?? (NSNull() as Any) }
            }
            try await events.record(
                .ticketUpdated, ticketID: ticketID, customerID: ticket.customerID, actor: principal,
                data: ["changes": recorded, "version": updated.version], on: connection)
            if let endedClaim {
                try await events.record(
                    endedClaim.agentID == agentID ? .ticketClaimReleased : .ticketClaimBroken, ticketID: ticketID, customerID: ticket.customerID,
                    actor: principal, data: ["agent_id": endedClaim.agentID.uuidString.lowercased(), "reason": "reassigned"], on: connection)
            }
            return updated
        }
    }

    /// false only for an agent that exists and was deactivated (an unknown one is the foreign key's to refuse).
    /// Share-locked until the change commits: a deactivation running meanwhile (which hands the agent's
    /// open tickets back) either comes first and is seen here, or waits and then hands this one back
    /// too; unlocked, the ticket could be left with a gone assignee that no queue ever offers again.
    func isActive(agent: UUID, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("SELECT active FROM agents WHERE id = \(agent) FOR SHARE", logger: logger)
        for try await active in rows.decode(Bool.self) { return active }
        return true
    }

    /// Trimmed, de-duplicated, in the order given.
    static func normalizedTags(_ tags: [String]) -> [String] {
        var seen = Set<String>()
        return tags.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    /// Adds an internal note (申し送り) to the ticket's timeline; it is never sent to the customer.
    /// With `replay`, a retry of a note that committed gets that note, not a second one.
    func addNote(ticketID: UUID, body: String, mentions: [UUID], by principal: Principal, agentID: UUID,
                 replay: RequestReplay? = nil) async throws -> Message {
        try await database.withTransaction { connection in
            if let earlier = try await replay?.earlier(on: connection) {
                guard let note = try await MessageStore(logger: logger).message(id: earlier, on: connection) else { throw Problem.internalError }
                return note
            }
            // Under the ticket's row lock, as every writer of its timeline: a note committed while a
            // customer's message waits to commit would otherwise show as the newest message without
            // it, and a reply sent with the note as last seen would pass the traffic cop unread.
            let (ticket, _) = try await tickets.lock(ticketID, on: connection)
            let wanted = Array(Set(mentions))
            var known = Set<UUID>()
            let rows = try await connection.run("SELECT id FROM agents WHERE id = ANY(\(wanted))", logger: logger)
            for try await id in rows.decode(UUID.self) { known.insert(id) }
            let unknown = wanted.filter { !known.contains($0) }
            guard unknown.isEmpty else {
                throw Problem.validationFailed(unknown.map { .init(pointer: "/mentions", message: "there is no agent \($0.uuidString.lowercased())") })
            }
            let note = try await MessageStore(logger: logger).insertNote(
                ticketID: ticketID, channel: ticket.channel, agentID: agentID, body: body,
                metadata: ["mentions": mentions.map(\.lowercased)], on: connection)
            try await events.record(
                .noteAdded, ticketID: ticketID, customerID: ticket.customerID, messageID: note.id, actor: principal,
                data: ["mentions": mentions.map { $0.uuidString.lowercased() }], on: connection)
            try await replay?.record(note.id, on: connection)
            return note
        }
    }
}
