import Foundation
import Logging
import PostgresNIO

/// The SQL behind customers and their identities.
struct CustomerStore: Sendable {
    let logger: Logger

    /// The customer, its row and its identities read in one statement (one snapshot): read in two,
    /// a merge committing between them showed a customer not yet merged with no identity left.
    func customer(id: UUID, on connection: PostgresConnection) async throws -> Customer? {
        let rows = try await connection.run("""
            SELECT c.id, c.display_name, c.is_vip, c.notes, c.merged_into, c.created_at, c.updated_at, c.version,
                   i.id, i.kind, i.value, i.verified, i.undeliverable_reason, i.undeliverable_at, i.created_at
            FROM customers c LEFT JOIN customer_identities i ON i.customer_id = c.id
            WHERE c.id = \(id)
            ORDER BY i.created_at, i.id
            """, logger: logger)
        var customer: Customer?
        for try await (id, name, vip, notes, mergedInto, createdAt, updatedAt, version,
                       identityID, kind, value, verified, reason, undeliverableAt, identityCreatedAt)
            in rows.decode((UUID, String?, Bool, String?, UUID?, Date, Date, Int64, UUID?, String?, String?, Bool?, String?, Date?, Date?).self)
        {
            if customer == nil {
                customer = Customer(
                    id: id, displayName: name, isVIP: vip, notes: notes, mergedInto: mergedInto,
                    identities: [], createdAt: createdAt, updatedAt: updatedAt, version: version)
            }
            // No identity: the left join's one row of nulls.
            guard let identityID, let kind = kind.flatMap(Customer.Identity.Kind.init(rawValue:)), let value, let verified, let identityCreatedAt
            else { continue }
            customer?.identities.append(.init(
                id: identityID, kind: kind, value: value, verified: verified,
                undeliverableReason: reason, undeliverableAt: undeliverableAt, createdAt: identityCreatedAt))
        }
        return customer
    }

    /// The customer's version, its row locked for the caller's transaction (an `If-Match` checked
    /// against it holds until the write); nil for an unknown customer. A merged customer is the
    /// `409` naming its survivor, as the write would be: its own version never moves again, so a
    /// `412` would send the caller round reading the survivor's ETag for ever.
    func lockedVersion(id: UUID, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version, merged_into FROM customers WHERE id = \(id) FOR NO KEY UPDATE", logger: logger)
        for try await (version, mergedInto) in rows.decode((Int64, UUID?).self) {
            if mergedInto != nil { throw try await missingOrMerged(id, on: connection) }
            return version
        }
        return nil
    }

    /// The live customer, starting from `survivor` (as `customer_survivor` or `identity_owner` found
    /// it): a merge that committed since moves the answer on to the customer it was merged into,
    /// never to a customer marked merged with no identities.
    func live(from survivor: UUID, on connection: PostgresConnection) async throws -> Customer? {
        var id = survivor
        var customer: Customer?
        // Each hop is a merge that committed within this request: a handful is already absurd.
        for _ in 0..<5 {
            customer = try await self.customer(id: id, on: connection)
            guard let merged = customer?.mergedInto, let next = try await self.survivor(of: merged, on: connection) else { break }
            id = next
        }
        return customer
    }
}
