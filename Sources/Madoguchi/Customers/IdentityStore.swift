import Foundation
import Logging
import PostgresNIO

/// The one writer of `customer_identities`: identities linked to customers, moved by merges, and
/// marked undeliverable (a hard bounce, a LINE block) or deliverable again. Every method runs in the
/// caller's transaction.
struct IdentityStore: Sendable {
    let logger: Logger

    /// Takes the identity's lock for the rest of the caller's transaction, so concurrent first
    /// contacts from one new identity serialize. Callers locking several identities lock them in
    /// sorted order (`lock(_:)`), so two requests never wait on each other.
    func lock(kind: Customer.Identity.Kind, value: String, on connection: PostgresConnection) async throws {
        try await AdvisoryLock.take(Self.lockKey(kind: kind, value: value), on: connection, logger: logger)
    }

    /// The `AdvisoryLock` key of an identity, for a caller that takes it within another statement.
    static func lockKey(kind: Customer.Identity.Kind, value: String) -> String { "identity:\(kind.rawValue):\(value)" }

    func lock(_ identities: [(kind: Customer.Identity.Kind, value: String)], on connection: PostgresConnection) async throws {
        for key in Self.lockKeys(identities) {
            try await AdvisoryLock.take(key, on: connection, logger: logger)
        }
    }

    /// The `AdvisoryLock` keys of several identities, in the order they are always taken.
    static func lockKeys(_ identities: [(kind: Customer.Identity.Kind, value: String)]) -> [String] {
        identities.sorted(by: { ($0.kind.rawValue, $0.value) < ($1.kind.rawValue, $1.value) }).map { lockKey(kind: $0.kind, value: $0.value) }
    }

    /// The live customer (merges followed) owning this identity, or nil. The customer's row is
    /// share-locked for the rest of the transaction, so a merge running now finishes first (and this
    /// finds the survivor) or waits for this transaction — and then moves what it wrote.
    func owner(kind: Customer.Identity.Kind, value: String, on connection: PostgresConnection) async throws -> UUID? {
        for _ in 0..<5 {
            // The survivor is found with the statement's snapshot, then its row share-locked: a merge
            // committed meanwhile shows as `merged_into` on the locked row, and the next turn, with a
            // new snapshot, follows it (`identity_owner`, migration 0039).
            let rows = try await connection.run(
                "SELECT customer_id, live FROM identity_owner(\(kind.rawValue), \(value))", logger: logger)
            var found: Owner?
            for try await (id, live) in rows.decode((UUID, Bool).self) { found = Owner(customerID: id, live: live) }
            guard let found else { return nil }
            if found.live { return found.customerID }
        }
        throw Problem(.ticketBusy, status: .conflict, title: "Customer busy", detail: "The customer was being merged; retry.")
    }

    /// What `identity_owner` found: the customer, and whether it was still live once locked.
    struct Owner: Sendable {
        var customerID: UUID
        var live: Bool

        /// Places one row of `identity_owners` (`n`, `customer_id`, `live`; all null when the
        /// statement had no identity) at its identity's position in `owners`.
        static func place(position: Int64?, customerID: UUID?, live: Bool?, in owners: inout [Owner?]) {
            guard let position, let customerID, position >= 1, position <= owners.count else { return }
            owners[Int(position) - 1] = Owner(customerID: customerID, live: live ?? false)
        }
    }

    /// The owners an earlier statement of the transaction read with `identity_owner`, under the
    /// identities' locks, by identity; an identity it did not read is looked up as usual.
    struct OwnersRead: Sendable {
        private var owners: [String: Owner?] = [:]

        static let none = OwnersRead()

        init() {}

        init(_ identities: [(kind: Customer.Identity.Kind, value: String)], _ owners: [Owner?]) {
            for (identity, owner) in zip(identities, owners) { self.owners[IdentityStore.lockKey(kind: identity.kind, value: identity.value)] = owner }
        }

        /// `.some(owner)` when it was read (the owner itself nil when there was none).
        func read(kind: Customer.Identity.Kind, value: String) -> Owner?? {
            owners[IdentityStore.lockKey(kind: kind, value: value)]
        }
    }

    /// The owner, from `read` when an earlier statement read it, else looked up now.
    func owner(kind: Customer.Identity.Kind, value: String, read: OwnersRead, on connection: PostgresConnection) async throws -> UUID? {
        if let found = read.read(kind: kind, value: value) { return try await owner(kind: kind, value: value, asRead: found, on: connection) }
        return try await owner(kind: kind, value: value, on: connection)
    }

    /// The owner as another statement read it with `identity_owner`: its customer when it was live,
    /// nil when there was none, and otherwise (merged meanwhile) a new lookup.
    func owner(
        kind: Customer.Identity.Kind, value: String, asRead found: Owner?, on connection: PostgresConnection
    ) async throws -> UUID? {
        guard let found else { return nil }
        return found.live ? found.customerID : try await owner(kind: kind, value: value, on: connection)
    }

    /// Links an identity nobody owns to `customerID` (the caller holds its lock and checked `owner`).
    /// `verified`: someone vouches that it is this customer's (`Customer.Identity.verified`).
    func insert(
        kind: Customer.Identity.Kind, value: String, rawValue: String?, customerID: UUID, verified: Bool = false, on connection: PostgresConnection
    ) async throws {
        try await insert([(kind, value, rawValue)], customerID: customerID, verified: verified, on: connection)
    }

    /// Links several identities nobody owns to `customerID`, in one statement (a form's email and
    /// phone, a chat's id and the email it collected).
    func insert(
        _ identities: [(kind: Customer.Identity.Kind, value: String, rawValue: String?)], customerID: UUID, verified: Bool = false,
        on connection: PostgresConnection
    ) async throws {
        guard !identities.isEmpty else { return }
        try await connection.perform("""
            INSERT INTO customer_identities (customer_id, kind, value, raw_value, verified)
            SELECT \(customerID), i.kind, i.value, CASE WHEN i.has_raw THEN i.raw_value END, v.verified
            FROM unnest(\(identities.map(\.kind.rawValue))::text[], \(identities.map(\.value))::text[],
                        \(identities.map { String(($0.rawValue ?? "").prefix(1024)) })::text[], \(identities.map { $0.rawValue != nil })::boolean[])
                 WITH ORDINALITY AS i(kind, value, raw_value, has_raw, n)
                 -- Last, so the values stay the third parameter and their spellings the fourth (`OwnSQLReplay`).
                 CROSS JOIN (SELECT \(verified)::boolean AS verified) v
            ORDER BY i.n
            """, logger: logger)
    }

    /// Someone vouches for an identity linked before without it (`Customer.Identity.verified`).
    /// True if it was not verified until now.
    func vouch(kind: Customer.Identity.Kind, value: String, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("""
            UPDATE customer_identities SET verified = true WHERE kind = \(kind.rawValue) AND value = \(value) AND NOT verified RETURNING 1
            """, logger: logger)
        return try await !rows.collect().isEmpty
    }

    /// Nothing sent to this identity arrives (a hard bounce, a blocked LINE account): replies skip it
    /// until `markDeliverable`. Returns the customers it belongs to (none when we do not know it).
    @discardableResult
    func markUndeliverable(kind: Customer.Identity.Kind, value: String, reason: String, on connection: PostgresConnection) async throws -> [UUID] {
        let rows = try await connection.run("""
            UPDATE customer_identities SET undeliverable_at = now(), undeliverable_reason = \(Text.limit(reason, 2000))
            WHERE kind = \(kind.rawValue) AND value = \(value)
            RETURNING customer_id
            """, logger: logger)
        var customers: [UUID] = []
        for try await id in rows.decode(UUID.self) { customers.append(id) }
        return customers
    }

    /// `happenedAt`: when what proves the address works happened, if it is known and may be late (a
    /// provider's redelivered event): a mark made after it stands. A LINE follow redelivered after the
    /// unfollow that followed it lifted the mark, and replies were pushed to a user who had blocked us.
    func markDeliverable(kind: Customer.Identity.Kind, value: String, happenedAt: Date? = nil, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE customer_identities SET undeliverable_at = NULL, undeliverable_reason = NULL
            WHERE kind = \(kind.rawValue) AND value = \(value)
              AND (\(happenedAt)::timestamptz IS NULL OR undeliverable_at IS NULL OR undeliverable_at < \(happenedAt)::timestamptz)
            """, logger: logger)
    }

    /// Moves every identity of customer `other` to `target` (a merge); returns how many.
    func moveAll(from other: UUID, to target: UUID, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.run("UPDATE customer_identities SET customer_id = \(target) WHERE customer_id = \(other) RETURNING id", logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }
}
