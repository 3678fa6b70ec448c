import Foundation
import Logging
import PostgresNIO

/// Merging two customers who turned out to be one person: the other's identities, tickets and
/// messages move to the survivor in one transaction, and the other's id keeps answering as the
/// survivor (`merged_into`).
///
/// Both rows are locked in id order, whichever way round the merge was asked for, so concurrent
/// merges of one pair serialize instead of deadlocking: the first merges; the later ones find the two
/// already one customer and answer with the survivor. With them, in the same order, the customers
/// merged into the other earlier, whose pointers move too: a retried earlier merge holding one of
/// them while it waited for the other deadlocked with this one.
///
/// `FOR NO KEY UPDATE`, not `FOR UPDATE`: a merge never changes a customer's id, and every writer
/// on a ticket (a claim, a note, a reply) locks the ticket and then inserts an event naming the
/// customer, whose foreign-key check takes `FOR KEY SHARE` on it. Under `FOR UPDATE` that waited
/// for the merge, while the merge waited for the ticket: a deadlock. Ingest's `FOR SHARE` on the
/// owners of a message's contacts (`identity_owner`) still waits for the merge, as it must.
struct CustomerMerge: Sendable {
    let logger: Logger

    /// Returns the survivor's id: `into`, or — when the pair was already merged the other way — the
    /// customer that survived then.
    func merge(_ other: UUID, into target: UUID, by principal: Principal, on connection: PostgresConnection) async throws -> UUID {
        guard other != target else {
            throw Problem.validationFailed([.init(pointer: "/customer_id", message: "is this customer itself")])
        }
        let rows = try await connection.run("""
            SELECT id, merged_into FROM customers WHERE id IN (\(target), \(other)) OR merged_into = \(other) ORDER BY id FOR NO KEY UPDATE
            """, logger: logger)
        var mergedInto: [UUID: UUID?] = [:]
        for try await (id, into) in rows.decode((UUID, UUID?).self) where id == target || id == other { mergedInto[id] = into }
        guard let targetState = mergedInto[target] else { throw Problem.notFound("There is no customer \(target.uuidString.lowercased()).") }
        guard let otherState = mergedInto[other] else { throw Problem.notFound("There is no customer \(other.uuidString.lowercased()).") }

        // Already one customer, either way round: nothing to move.
        if otherState == target { return target }
        if targetState == other { return other }
        if let survivor = targetState ?? otherState {
            var problem = Problem(.alreadyMerged, status: .conflict, title: "Customer merged",
                                  detail: "One of the two was already merged into customer \(survivor.uuidString.lowercased()); merge with that one.")
            problem.members["merged_into"] = .string(survivor.uuidString.lowercased())
            throw problem
        }

        let moved = try await move(from: other, to: target, on: connection)
        let customers = CustomerStore(logger: logger)
        try await customers.absorbDetails(of: other, into: target, on: connection)
        try await customers.markMerged(other, into: target, on: connection)
        try await EventStore(logger: logger).record(
            .customerMerged, customerID: target, actor: principal,
            data: ["merged_customer_id": other.uuidString.lowercased(), "identities_moved": moved.identities,
                   "tickets_moved": moved.tickets, "messages_moved": moved.messages],
            on: connection)
        return target
    }

    private func move(from other: UUID, to target: UUID, on connection: PostgresConnection) async throws -> (identities: Int, tickets: Int, messages: Int) {
        let identities = try await IdentityStore(logger: logger).moveAll(from: other, to: target, on: connection)
        let tickets = try await TicketStore(logger: logger).moveCustomer(from: other, to: target, on: connection)
        let messages = try await MessageStore(logger: logger).moveCustomer(from: other, to: target, on: connection)
        return (identities, tickets, messages)
    }
}
