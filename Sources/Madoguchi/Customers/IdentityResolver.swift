import MadoguchiMail
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

    var identities: IdentityStore { IdentityStore(logger: logger) }
    var customers: CustomerStore { CustomerStore(logger: logger) }
    var events: EventStore { EventStore(logger: logger) }

    struct Resolution: Sendable {
        var customerID: UUID
        var created: Bool
    }

    /// The customer of this identity, made (with the identity) if there is none. Takes the lock,
    /// unless the caller holds it (`locked`, and then `ownersRead` may hold its owner, read under it).
    func resolve(
        kind: Customer.Identity.Kind, value: String, rawValue: String?, displayName: String?, locked: Bool = false,
        ownersRead: IdentityStore.OwnersRead = .none, on connection: PostgresConnection
    ) async throws -> Resolution {
        if !locked { try await identities.lock(kind: kind, value: value, on: connection) }
        let read = locked ? ownersRead : .none
        if let existing = try await identities.owner(kind: kind, value: value, read: read, on: connection) {
            return Resolution(customerID: existing, created: false)
        }
        return Resolution(customerID: try await create(kind: kind, value: value, rawValue: rawValue, displayName: displayName, on: connection),
                          created: true)
    }

    /// A new customer with this one identity, for a caller that holds the identity's lock and, under
    /// it, found no owner (so nobody else can have made one since): no second lock or lookup.
    func create(kind: Customer.Identity.Kind, value: String, rawValue: String?, displayName: String?, on connection: PostgresConnection)
        async throws -> UUID
    {
        let customerID = try await customers.insert(displayName: Self.shownName(displayName), on: connection)
        // A LINE user id comes only in a request LINE signed; an email's From or an SMS's number
        // can be anyone's.
        try await identities.insert(kind: kind, value: value, rawValue: rawValue, customerID: customerID, verified: kind == .line, on: connection)
        try await events.record(.customerCreated, customerID: customerID, actor: nil, data: ["identities": [["kind": kind.rawValue, "value": value]]], on: connection)
        return customerID
    }

    /// A customer with no identity at all (a mail without a sender): kept, so nothing is lost, and
    /// visibly unanswerable.
    func anonymousCustomer(on connection: PostgresConnection) async throws -> UUID {
        let customerID = try await customers.insert(displayName: nil, on: connection)
        try await events.record(.customerCreated, customerID: customerID, actor: nil, data: ["identities": [Any]()], on: connection)
        return customerID
    }

    /// The customer of a message that carries several contacts. The first is the sender's own: a
    /// chat's user id, which the gateway's key vouches for, or a form's email (else its phone, else
    /// the order system's id), the address the form asks answers to go to. It finds its customer or
    /// makes one, so what is written there reaches that customer's history, and what we write back
    /// reaches the owner of that address, not the person who typed it. The others are what the
    /// sender typed in beside it, and anyone can type anyone's phone: unless the gateway says it
    /// checked them (`claimsVerified`: a logged-in member, a confirmed address), a typed contact
    /// never becomes an identity. As one it would bring a stranger's messages into a customer's
    /// history later (an SMS from that phone), or hand the order system the wrong customer for it.
    /// - When nobody has the sender's own contact yet, a checked typed contact that somebody has
    ///   finds theirs instead (a member who mailed before, now chatting logged in), and the own
    ///   contact joins them; otherwise a new customer is made.
    /// - A checked typed contact nobody has joins the customer. An unchecked one is left out,
    ///   flagged `contact-not-linked`, and kept in the message for an agent to link by hand.
    /// - A contact of another customer is never moved here: a supervisor is told
    ///   (`merge-suggested`).
    /// With no contact at all, a customer with no identity, flagged `no-contact`.
    func resolve(
        contacts: [(kind: Customer.Identity.Kind, value: String)], claimsVerified: Bool, displayName: String?, channel: Channel,
        locked: Bool = false, ownersRead: IdentityStore.OwnersRead = .none, on connection: PostgresConnection
    ) async throws -> (UUID, [String]) {
        guard !contacts.isEmpty else { return (try await anonymousCustomer(on: connection), ["no-contact"]) }
        if !locked { try await identities.lock(contacts, on: connection) }
        // Owners read before the locks were taken would prove nothing: only a locked caller's count.
        let read = locked ? ownersRead : .none
        var owners: [(kind: Customer.Identity.Kind, value: String, owner: UUID?)] = []
        for contact in contacts {
            owners.append((contact.kind, contact.value,
                           try await identities.owner(kind: contact.kind, value: contact.value, read: read, on: connection)))
        }
        var flags: [String] = []
        let joining = owners.enumerated().filter { index, contact in contact.owner == nil && (index == 0 || claimsVerified) }.map(\.element)
        let customerID: UUID
        let known = owners[0].owner ?? (claimsVerified ? owners.dropFirst().first(where: { $0.owner != nil })?.owner : nil)
        if let known {
            customerID = known
        } else {
            // Made with the contacts that join it (below): the sender's own, and the checked ones nobody has.
            customerID = try await customers.insert(displayName: Self.shownName(displayName), on: connection)
            try await events.record(.customerCreated, customerID: customerID, actor: nil,
                                    data: ["identities": joining.map { ["kind": $0.kind.rawValue, "value": $0.value] }], on: connection)
        }
        // Typed in and unchecked, a contact this customer does not have is not linked to it, whether
        // nobody has it or another customer does (that one is also suggested for a merge, below).
        if !claimsVerified && owners.dropFirst().contains(where: { $0.owner != customerID }) { flags.append("contact-not-linked") }
        // The contacts that join, in one statement.
        try await identities.insert(joining.map { ($0.kind, $0.value, $0.value) }, customerID: customerID, verified: claimsVerified, on: connection)
        // A new customer's identities are listed in its customer.created; a known one's are news.
        if known != nil {
            for (kind, value, _) in joining {
                try await events.record(.customerIdentityAdded, customerID: customerID, actor: nil,
                                        data: ["kind": kind.rawValue, "value": value, "channel": channel.rawValue], on: connection)
            }
        }
        for (index, (kind, value, owner)) in owners.enumerated() {
            guard let owner, owner != customerID else { continue }
            if !flags.contains("merge-suggested") { flags.append("merge-suggested") }
            var data: [String: Any] = ["other_customer_id": owner.lowercased, "kind": kind.rawValue, "value": value, "channel": channel.rawValue]
            // Anyone can type anyone's phone: the supervisor weighs such a suggestion accordingly.
            if index > 0 && !claimsVerified { data["typed_unchecked"] = true }
            try await events.record(.customerMergeSuggested, customerID: customerID, actor: nil, data: data, on: connection)
        }
        return (customerID, flags)
    }

    /// A name as a sender gave it, fit for `customers.display_name`; nil when there is none.
    /// On one line (a reply's To header carries it) and at most 500 characters.
    static func shownName(_ name: String?) -> String? {
        name.flatMap(MailAddress.oneLineName).map { Text.prefix($0, 500) }
    }
}
