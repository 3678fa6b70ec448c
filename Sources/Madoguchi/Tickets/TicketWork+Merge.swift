import Foundation
import PostgresNIO

extension TicketWork {
    /// Merges ticket `duplicateID` into `survivorID` (both of one customer): the duplicate is closed
    /// and points at the survivor, the customer's wait moves over, and a note on the survivor says
    /// what came in. Returns the survivor as it now stands. See `mergeTicket` in openapi.yaml.
    func merge(_ duplicateID: UUID, into survivorID: UUID, comment: String?, by principal: Principal, agentID: UUID) async throws -> Ticket {
        guard duplicateID != survivorID else {
            throw Problem.validationFailed([.init(pointer: "/into_ticket_id", message: "is the ticket itself")])
        }
        return try await database.withTransaction { connection in
            try await tickets.lockForMerge(duplicate: duplicateID, survivor: survivorID, on: connection)
            let (duplicate, duplicateClaimLive) = try await lockTicket(duplicateID, on: connection)
            let (survivor, survivorClaimLive): (Ticket, Bool)
            do {
                (survivor, survivorClaimLive) = try await lockTicket(survivorID, on: connection)
            } catch let problem as Problem where problem.status == .notFound {
                throw Problem.validationFailed([.init(pointer: "/into_ticket_id", message: "there is no ticket \(survivorID.lowercased)")])
            }
            try checkMergeable(duplicate, into: survivor)
            for (ticket, live) in [(duplicate, duplicateClaimLive), (survivor, survivorClaimLive)] {
                if let claim = ticket.claim, live, claim.agentID != agentID, principal.role != .supervisor {
                    throw await Self.claimHeld(claim, on: connection, logger: logger)
                }
            }
            guard try await sameCustomer(duplicate, survivor, on: connection) else {
                throw Problem(.mergeRefused, status: .conflict, title: "Not the same customer",
                              detail: "Ticket #\(duplicate.number) and ticket #\(survivor.number) belong to different customers; only one customer's tickets are merged (merge the customers first if they are one person).")
            }

            // The duplicate's resolution clock goes on in the survivor when both run unpaused (a
            // paused one's due time moves when its pause ends, so it is not carried), from the earlier
            // opening (`resolution_since`, which a later reset or priority change counts from). Carried, the
            // duplicate's close is no resolution: it leaves no due time behind for the reports to
            // judge it by. Not carried, its close is judged as any close is, so a late duplicate
            // never vanishes from the SLA report by being merged.
            let carried = try await resolutionClockCarries(from: duplicateID, to: survivorID, on: connection)

            // First the survivor takes over the duplicate's wait and clocks, then the duplicate closes.
            let continued = try await tickets.takeOverWait(of: duplicateID, into: survivorID, carriesResolution: carried, on: connection)
            let closed = try await tickets.closeMerged(duplicateID, into: survivorID, carriesResolution: carried, on: connection)
            // Replies not yet sent go with the conversation: on a closed ticket they could never go.
            let moved = try await ReplyStore(logger: logger).moveUnsent(from: duplicateID, to: survivorID, on: connection)

            var text = "Merged ticket #\(duplicate.number) 「\(duplicate.subject)」 into this one."
            if moved > 0 { text += " Its \(moved) unsent \(moved == 1 ? "reply is" : "replies are") here now." }
            if let comment, !comment.isEmpty { text += "\n\n" + comment }
            let note = try await MessageStore(logger: logger).insertNote(
                ticketID: survivorID, channel: survivor.channel, agentID: agentID, body: text,
                metadata: ["kind": "ticket_merged", "merged_ticket_id": duplicateID.lowercased, "merged_number": duplicate.number], on: connection)
            // The survivor's timeline changed: a follower hears of it as of any note, even when its
            // wait and status stay as they were (no other event of the merge names the survivor).
            try await events.record(.noteAdded, ticketID: survivorID, customerID: survivor.customerID, messageID: note.id, actor: principal,
                                    data: ["mentions": [String]()], on: connection)
            try await recordMerge(duplicate: duplicate, closed: closed, duplicateClaimLive: duplicateClaimLive, survivor: survivor, continued: continued,
                                  comment: comment, by: principal, agentID: agentID, on: connection)
            return continued
        }
    }

    private func checkMergeable(_ duplicate: Ticket, into survivor: Ticket) throws {
        if let into = duplicate.mergedInto {
            throw Problem(.mergeRefused, status: .conflict, title: "Already merged",
                          detail: "Ticket #\(duplicate.number) was merged into ticket \(into.lowercased) already.")
        }
        if let into = survivor.mergedInto {
            throw Problem(.mergeRefused, status: .conflict, title: "Merged away",
                          detail: "Ticket #\(survivor.number) was itself merged into ticket \(into.lowercased); merge into that one.")
        }
        for ticket in [duplicate, survivor] where ticket.status == .closed {
            throw Problem(.mergeRefused, status: .conflict, title: "Ticket closed",
                          detail: "Ticket #\(ticket.number) is closed; a closed ticket stays as it is, and neither goes into nor takes in another.")
        }
    }

    /// One customer, counting a merged customer as its survivor.
    private func sameCustomer(_ first: Ticket, _ second: Ticket, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run(
            "SELECT customer_survivor(\(first.customerID)) = customer_survivor(\(second.customerID))", logger: logger)
        for try await same in rows.decode(Bool?.self) { return same ?? false }
        return false
    }

    private func recordMerge(
        duplicate: Ticket, closed: Ticket, duplicateClaimLive: Bool, survivor: Ticket, continued: Ticket, comment: String?,
        by principal: Principal, agentID: UUID, on connection: PostgresConnection
    ) async throws {
        var merged: [String: Any] = ["number": duplicate.number, "into_ticket_id": survivor.id.lowercased, "into_number": survivor.number]
        if let comment, !comment.isEmpty { merged["comment"] = comment }
        try await events.record(.ticketMerged, ticketID: duplicate.id, customerID: duplicate.customerID, actor: principal, data: merged, on: connection)

        var changes: [String: Any] = ["status": ["from": duplicate.status.rawValue, "to": closed.status.rawValue]]
        if let waited = duplicate.awaitingReplySince {
            changes["awaiting_reply_since"] = ["from": waited.rfc3339UTC, "to": NSNull()]
        }
        try await events.record(.ticketUpdated, ticketID: duplicate.id, customerID: duplicate.customerID, actor: principal,
                                data: ["changes": changes, "version": closed.version], on: connection)
        if let claim = duplicate.claim, duplicateClaimLive {
            try await events.record(claim.agentID == agentID ? .ticketClaimReleased : .ticketClaimBroken, ticketID: duplicate.id,
                                    customerID: duplicate.customerID, actor: principal,
                                    data: ["agent_id": claim.agentID.lowercased, "reason": "merged"], on: connection)
        }
        if continued.awaitingReplySince != survivor.awaitingReplySince {
            try await events.record(
                .ticketUpdated, ticketID: survivor.id, customerID: survivor.customerID, actor: principal,
                data: ["changes": ["awaiting_reply_since": ["from": survivor.awaitingReplySince.map { $0.rfc3339UTC as Any } ?? NSNull(),
                                                           "to": continued.awaitingReplySince.map { $0.rfc3339UTC as Any } ?? NSNull()]],
                       "version": continued.version], on: connection)
        }
        if continued.status != survivor.status {
            try await events.record(
                .ticketReopened, ticketID: survivor.id, customerID: survivor.customerID, actor: principal,
                data: ["from": survivor.status.rawValue, "to": continued.status.rawValue, "reason": "merged"], on: connection)
        }
    }

    /// Whether both tickets' resolution clocks run unpaused (neither pending, solved nor closed),
    /// so that the duplicate's can go on in the survivor as it is. Both rows are locked already.
    private func resolutionClockCarries(from duplicateID: UUID, to survivorID: UUID, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("""
            SELECT t.status IN ('new', 'open', 'on_hold') AND d.status IN ('new', 'open', 'on_hold')
                   AND t.resolution_due_at IS NOT NULL AND d.resolution_due_at IS NOT NULL
                   AND t.sla_paused_at IS NULL AND d.sla_paused_at IS NULL
                   AND t.resolution_paused_at IS NULL AND d.resolution_paused_at IS NULL
            FROM tickets t, tickets d
            WHERE t.id = \(survivorID) AND d.id = \(duplicateID)
            """, logger: logger)
        for try await carries in rows.decode(Bool.self) { return carries }
        return false
    }
}
