import Foundation
import Logging
import PostgresNIO

/// What the order system and supervisors change: new customers, their details, their identities.
extension CustomerStore {
    struct Details: Sendable {
        var displayName: String?
        var isVIP: Bool?
        var notes: String?
    }

    /// The one `INSERT INTO customers`: whoever makes a customer (a first contact, the order system).
    func insert(displayName: String?, isVIP: Bool = false, notes: String? = nil, on connection: PostgresConnection) async throws -> UUID {
        let rows = try await connection.run("""
            INSERT INTO customers (display_name, is_vip, notes) VALUES (\(displayName), \(isVIP), \(notes)) RETURNING id
            """, logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        throw RowNotFound("INSERT INTO customers … RETURNING id")
    }

    /// `identities`: each in its stored form, and as typed (kept as the identity's `raw_value`).
    func create(
        _ details: Details, identities: [(kind: Customer.Identity.Kind, value: String, typed: String)], by principal: Principal,
        on connection: PostgresConnection
    ) async throws -> UUID {
        let customerID = try await insert(displayName: details.displayName, isVIP: details.isVIP ?? false, notes: details.notes, on: connection)
        // Sorted, like every identity lock taken, so two requests can never wait on each other.
        for (index, (kind, value, typed)) in identities.enumerated().sorted(by: { ($0.1.kind.rawValue, $0.1.value) < ($1.1.kind.rawValue, $1.1.value) }) {
            _ = try await link(kind, value, typed: typed, to: customerID, pointer: "/identities/\(index)/value", on: connection)
        }
        try await EventStore(logger: logger).record(.customerCreated, customerID: customerID, actor: principal,
                                                    data: ["identities": identities.map { ["kind": $0.kind.rawValue, "value": $0.value] }], on: connection)
        return customerID
    }

    /// Writes the fields given; a field given its present value is no change. Nothing changed, the
    /// version stays and no event is written: an order system that syncs its customers every night
    /// would otherwise move every ETag (412s for whoever edits) and send a `customer.updated` a day
    /// for each.
    func update(_ id: UUID, _ details: Details, by principal: Principal, on connection: PostgresConnection) async throws {
        let rows = try await connection.run("""
            WITH given AS (
                SELECT CASE WHEN \(details.displayName != nil) THEN \(details.displayName)::text ELSE c.display_name END AS display_name,
                       coalesce(\(details.isVIP)::boolean, c.is_vip) AS is_vip,
                       CASE WHEN \(details.notes != nil) THEN \(details.notes)::text ELSE c.notes END AS notes
                FROM customers c WHERE c.id = \(id)
            )
            UPDATE customers c
            SET display_name = given.display_name, is_vip = given.is_vip, notes = given.notes, updated_at = now(), version = c.version + 1
            FROM given, customers old
            WHERE c.id = \(id) AND old.id = c.id AND c.merged_into IS NULL
              AND (given.display_name, given.is_vip, given.notes) IS DISTINCT FROM (c.display_name, c.is_vip, c.notes)
            RETURNING old.display_name IS DISTINCT FROM c.display_name, old.is_vip IS DISTINCT FROM c.is_vip, old.notes IS DISTINCT FROM c.notes
            """, logger: logger)
        var changed: [String]?
        for try await (name, vip, notes) in rows.decode((Bool, Bool, Bool).self) {
            changed = [(name, "display_name"), (vip, "is_vip"), (notes, "notes")].filter(\.0).map(\.1)
        }
        guard let changed else {
            // No row: a customer missing or merged (an error), or one that already reads so.
            let live = try await connection.run("SELECT 1 FROM customers WHERE id = \(id) AND merged_into IS NULL", logger: logger).collect()
            guard !live.isEmpty else { throw try await missingOrMerged(id, on: connection) }
            return
        }
        try await EventStore(logger: logger).record(.customerUpdated, customerID: id, actor: principal, data: ["fields": changed], on: connection)
    }

    /// Links an identity to a customer. True if it was new; false if it already was this customer's.
    /// Another customer's identity is a 409 naming that customer.
    /// `typed`: the identity as the caller wrote it (`ＣＵＳＴ－０００２`), kept as its `raw_value`.
    /// An active agent's address is refused (422 at `pointer`): as a customer's, the agent's own mail
    /// would be filed as that customer's, and replies could go to the agent.
    func link(
        _ kind: Customer.Identity.Kind, _ value: String, typed: String? = nil, to customerID: UUID, pointer: String = "/value",
        on connection: PostgresConnection
    ) async throws -> Bool {
        let identities = IdentityStore(logger: logger)
        try await identities.lock(kind: kind, value: value, on: connection)
        if let owner = try await identities.owner(kind: kind, value: value, on: connection) {
            guard owner == customerID else {
                var problem = Problem(.identityTaken, status: .conflict, title: "Identity taken",
                                      detail: "\(kind.rawValue) \(value) belongs to customer \(owner.uuidString.lowercased()); add to that customer, or merge the two.")
                problem.members["customer_id"] = .string(owner.uuidString.lowercased())
                throw problem
            }
            // Linked before from a contact nobody checked (a guest's web form, a mail's From): the
            // shop now vouches for it, as it would have had it added it first.
            if try await identities.vouch(kind: kind, value: value, on: connection) {
                try await connection.perform("UPDATE customers SET version = version + 1, updated_at = now() WHERE id = \(customerID)", logger: logger)
            }
            return false
        }
        if kind == .email {
            let agents = try await connection.run("SELECT EXISTS (SELECT 1 FROM agents WHERE active AND lower(email) = \(value))", logger: logger)
            for try await taken in agents.decode(Bool.self) where taken {
                throw Problem.validationFailed([.init(pointer: pointer, message: "\(value) is an agent's address; a customer needs their own")])
            }
        }
        // The shop's own records (the order system, a supervisor) vouch for what they add.
        try await identities.insert(kind: kind, value: value, rawValue: typed.map { String($0.prefix(1024)) } ?? value, customerID: customerID,
                                    verified: true, on: connection)
        try await connection.perform("UPDATE customers SET version = version + 1, updated_at = now() WHERE id = \(customerID)", logger: logger)
        return true
    }

    /// 404 for an unknown id; 409 naming the survivor for a merged one (it can no longer be changed).
    func missingOrMerged(_ id: UUID, on connection: PostgresConnection) async throws -> Problem {
        let rows = try await connection.run("SELECT merged_into FROM customers WHERE id = \(id)", logger: logger)
        for try await mergedInto in rows.decode(UUID?.self) {
            if let mergedInto {
                var problem = Problem(.alreadyMerged, status: .conflict, title: "Customer merged",
                                      detail: "Customer \(id.uuidString.lowercased()) was merged into \(mergedInto.uuidString.lowercased()); change that one.")
                problem.members["merged_into"] = .string(mergedInto.uuidString.lowercased())
                return problem
            }
        }
        return Problem.notFound("There is no customer \(id.uuidString.lowercased()).")
    }

    /// The customer this id now stands for: itself, or the survivor of the merges it went through.
    func survivor(of id: UUID, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.run("SELECT customer_survivor(\(id))", logger: logger)
        for try await survivor in rows.decode(UUID?.self) { return survivor }
        return nil
    }

    /// A merge's survivor takes what the merged customer brings: VIP standing, a name it lacked,
    /// and both sets of notes (capped as notes are).
    func absorbDetails(of other: UUID, into target: UUID, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            UPDATE customers AS survivor
            SET is_vip = survivor.is_vip OR merged.is_vip,
                display_name = coalesce(survivor.display_name, merged.display_name),
                notes = CASE WHEN merged.notes IS NULL THEN survivor.notes
                             WHEN survivor.notes IS NULL THEN merged.notes
                             ELSE left(survivor.notes || E'\\n\\n' || merged.notes, 20000) END,
                updated_at = now(), version = survivor.version + 1
            FROM customers AS merged
            WHERE survivor.id = \(target) AND merged.id = \(other)
            """, logger: logger)
    }

    /// `other` is merged into `target`, and so is every customer merged into `other` before: a
    /// lookup follows one hop to the survivor.
    func markMerged(_ other: UUID, into target: UUID, on connection: PostgresConnection) async throws {
        try await connection.perform("UPDATE customers SET merged_into = \(target), merged_at = now(), updated_at = now() WHERE id = \(other)", logger: logger)
        try await connection.perform("UPDATE customers SET merged_into = \(target) WHERE merged_into = \(other)", logger: logger)
    }
}
