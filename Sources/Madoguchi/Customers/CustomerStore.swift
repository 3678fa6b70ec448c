import Foundation
import Logging
import PostgresNIO

/// The SQL behind customers and their identities.
struct CustomerStore: Sendable {
    let logger: Logger

    func customer(id: UUID, on connection: PostgresConnection) async throws -> Customer? {
        let rows = try await connection.run("""
            SELECT id, display_name, is_vip, notes, merged_into, created_at, updated_at
            FROM customers WHERE id = \(id)
            """, logger: logger)
        var customer: Customer?
        for try await (id, name, vip, notes, mergedInto, createdAt, updatedAt)
            in rows.decode((UUID, String?, Bool, String?, UUID?, Date, Date).self)
        {
            customer = Customer(
                id: id, displayName: name, isVIP: vip, notes: notes, mergedInto: mergedInto,
                identities: [], createdAt: createdAt, updatedAt: updatedAt)
        }
        guard var customer else { return nil }
        customer.identities = try await identities(of: id, on: connection)
        return customer
    }

    func identities(of customerID: UUID, on connection: PostgresConnection) async throws -> [Customer.Identity] {
        let rows = try await connection.run("""
            SELECT id, kind, value, verified, undeliverable_reason, undeliverable_at, created_at
            FROM customer_identities WHERE customer_id = \(customerID)
            ORDER BY created_at, id
            """, logger: logger)
        var identities: [Customer.Identity] = []
        for try await (id, kind, value, verified, reason, undeliverableAt, createdAt)
            in rows.decode((UUID, String, String, Bool, String?, Date?, Date).self)
        {
            guard let kind = Customer.Identity.Kind(rawValue: kind) else { continue }
            identities.append(.init(
                id: id, kind: kind, value: value, verified: verified,
                undeliverableReason: reason, undeliverableAt: undeliverableAt, createdAt: createdAt))
        }
        return identities
    }
}
