import Foundation
import Logging
import PostgresNIO

/// Finds the customer behind an identity (an email address, a phone number…), or makes one.
///
/// Concurrent first contacts from one new address must make exactly one customer: the identity's
/// advisory lock serializes them, so the second finds the first's committed row; the unique
/// `(kind, value)` constraint stands behind it.
struct IdentityResolver: Sendable {
    let logger: Logger

    struct Resolution: Sendable {
        var customerID: UUID
        var created: Bool
    }

    /// Takes the identity's lock for the rest of the caller's transaction. Callers resolving several
    /// identities lock them in sorted order so two requests can never wait on each other.
    func lock(kind: Customer.Identity.Kind, value: String, on connection: PostgresConnection) async throws {
        try await AdvisoryLock.take("identity:\(kind.rawValue):\(value)", on: connection, logger: logger)
    }

    /// The live customer (merges followed) owning this identity, or nil. The customer's row is
    /// share-locked for the rest of the transaction, so a merge running now finishes first (and this
    /// finds the survivor) or waits for this transaction — and then moves what it wrote.
    func customer(kind: Customer.Identity.Kind, value: String, on connection: PostgresConnection) async throws -> UUID? {
        for _ in 0..<5 {
            guard let candidate = try await survivor(kind: kind, value: value, on: connection) else { return nil }
            let rows = try await connection.query("SELECT merged_into FROM customers WHERE id = \(candidate) FOR SHARE", logger: logger)
            for try await mergedInto in rows.decode(UUID?.self) where mergedInto == nil { return candidate }
        }
        throw Problem(.ticketBusy, status: .conflict, title: "Customer busy", detail: "The customer was being merged; retry.")
    }

    private func survivor(kind: Customer.Identity.Kind, value: String, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT customer_survivor(customer_id) FROM customer_identities WHERE kind = \(kind.rawValue) AND value = \(value)
            """, logger: logger)
        for try await id in rows.decode(UUID?.self) { return id }
        return nil
    }

    /// The customer of this identity, made (with the identity) if there is none. Takes the lock.
    func resolve(
        kind: Customer.Identity.Kind, value: String, rawValue: String?, displayName: String?, on connection: PostgresConnection
    ) async throws -> Resolution {
        try await lock(kind: kind, value: value, on: connection)
        if let existing = try await customer(kind: kind, value: value, on: connection) {
            return Resolution(customerID: existing, created: false)
        }
        let customerID = try await createCustomer(displayName: displayName, on: connection)
        try await connection.query("""
            INSERT INTO customer_identities (customer_id, kind, value, raw_value)
            VALUES (\(customerID), \(kind.rawValue), \(value), \(rawValue.map { String($0.prefix(1024)) }))
            """, logger: logger)
        try await EventStore(logger: logger).record(
            .customerCreated, customerID: customerID, actor: nil, data: ["identity": kind.rawValue], on: connection)
        return Resolution(customerID: customerID, created: true)
    }

    /// A customer with no identity at all (a mail without a sender): kept, so nothing is lost, and
    /// visibly unanswerable.
    func anonymousCustomer(on connection: PostgresConnection) async throws -> UUID {
        let customerID = try await createCustomer(displayName: nil, on: connection)
        try await EventStore(logger: logger).record(
            .customerCreated, customerID: customerID, actor: nil, data: ["identity": "none"], on: connection)
        return customerID
    }

    /// Any known contact finds the customer; unknown ones join it. Contacts of two different
    /// customers are never merged here: the first in `contacts` wins and a supervisor is
    /// told. With no contact at all, a customer with no identity, flagged.
    /// Returns the customer and the flags to report (`no-contact`, `merge-suggested`).
    func resolve(
        contacts: [(kind: Customer.Identity.Kind, value: String)], displayName: String?, channel: Channel, on connection: PostgresConnection
    ) async throws -> (UUID, [String]) {
        guard !contacts.isEmpty else { return (try await anonymousCustomer(on: connection), ["no-contact"]) }
        for contact in contacts.sorted(by: { ($0.kind.rawValue, $0.value) < ($1.kind.rawValue, $1.value) }) {
            try await lock(kind: contact.kind, value: contact.value, on: connection)
        }
        var owners: [(kind: Customer.Identity.Kind, value: String, owner: UUID?)] = []
        for contact in contacts {
            owners.append((contact.kind, contact.value, try await customer(kind: contact.kind, value: contact.value, on: connection)))
        }
        var flags: [String] = []
        let customerID: UUID
        if let first = owners.first(where: { $0.owner != nil })?.owner {
            customerID = first
        } else {
            customerID = try await createCustomer(displayName: displayName, on: connection)
            try await EventStore(logger: logger).record(.customerCreated, customerID: customerID, actor: nil,
                                                        data: ["identity": contacts.map(\.kind.rawValue)], on: connection)
        }
        for (kind, value, owner) in owners {
            if owner == nil {
                try await connection.query("""
                    INSERT INTO customer_identities (customer_id, kind, value, raw_value) VALUES (\(customerID), \(kind.rawValue), \(value), \(value))
                    """, logger: logger)
            } else if let owner, owner != customerID {
                if !flags.contains("merge-suggested") { flags.append("merge-suggested") }
                try await EventStore(logger: logger).record(
                    .customerMergeSuggested, customerID: customerID, actor: nil,
                    data: ["other_customer_id": owner.uuidString.lowercased(), "kind": kind.rawValue, "value": value, "channel": channel.rawValue],
                    on: connection)
            }
        }
        return (customerID, flags)
    }

    private func createCustomer(displayName: String?, on connection: PostgresConnection) async throws -> UUID {
        let name = displayName.map { String($0.prefix(500)) }.flatMap { $0.isEmpty ? nil : $0 }
        let rows = try await connection.query("INSERT INTO customers (display_name) VALUES (\(name)) RETURNING id", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        throw Problem.internalError
    }
}
