import Foundation
import HTTPTypes
import MadoguchiAPI

extension APIHandler {
    /// A merged customer answers as its survivor, with `Content-Location` naming the survivor.
    func getCustomer(_ input: Operations.GetCustomer.Input) async throws -> Operations.GetCustomer.Output {
        let id = input.path.customerId.uuid
        let customer = try await database.withConnection { connection -> Customer? in
            guard let survivor = try await customers.survivor(of: id, on: connection) else { return nil }
            return try await customers.live(from: survivor, on: connection)
        }
        guard let customer else { throw Problem.notFound("There is no customer \(id.uuidString.lowercased()).") }
        if customer.id != id {
            RequestScope.current?.setResponseHeader(.contentLocation, "/v1/customers/\(customer.id.uuidString.lowercased())")
        }
        tagVersion(customer.version)
        return .ok(.init(body: .json(.init(customer))))
    }

    /// A `+` sent unencoded in a query string arrives as a space (form encoding reads it so):
    /// `?phone=+14155551234` and `?email=taro+shop@docomo.ne.jp` are what the order system meant, and
    /// neither a phone number's leading + nor an address's local part is ever a space.
    static func plusRestored(_ raw: String, kind: Customer.Identity.Kind) -> String {
        switch kind {
        case .phone:
            // A number in national form (0…) never had a +: its leading space is only a stray one.
            let digits = raw.drop { $0 == " " }
            return digits.count < raw.count && digits.first?.isNumber == true && digits.first != "0" ? "+" + digits : raw
        case .email:
            // `Taro Yamada <taro@example.jp>` has spaces of its own, in the name.
            guard let at = raw.lastIndex(of: "@"), raw[..<at].contains(" "), !raw.contains("<") else { return raw }
            let local = raw[..<at].trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " ", with: "+")
            return local + raw[at...]
        default:
            return raw
        }
    }

    func findCustomers(_ input: Operations.FindCustomers.Input) async throws -> Operations.FindCustomers.Output {
        let given: [(Customer.Identity.Kind, String, String)] = [
            input.query.email.map { (.email, $0, "email") }, input.query.phone.map { (.phone, $0, "phone") },
            input.query.externalId.map { (.external, $0, "external_id") },
        ].compactMap { $0 }
        guard given.count == 1, let (kind, raw, name) = given.first else {
            throw Problem.invalidParameter(given.isEmpty ? "email" : given[1].2, "give exactly one of email, phone, external_id")
        }
        let value: String
        do {
            value = try IdentityValue.normalize(kind, Self.plusRestored(raw, kind: kind), field: name)
        } catch let problem as Problem {
            throw Problem.invalidParameter(name, problem.errors.first?.message ?? problem.detail)
        }
        let found = try await database.withConnection { connection -> Customer? in
            guard let id = try await IdentityStore(logger: logger).owner(kind: kind, value: value, on: connection) else { return nil }
            return try await customers.live(from: id, on: connection)
        }
        return .ok(.init(body: .json(.init(items: found.map { [.init($0)] } ?? []))))
    }

    func createCustomer(_ input: Operations.CreateCustomer.Input) async throws -> Operations.CreateCustomer.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        let identities = try (body.identities ?? []).enumerated().map { index, identity in
            let kind = Customer.Identity.Kind(rawValue: identity.kind.rawValue)!
            return (kind: kind, value: try IdentityValue.normalize(kind, identity.value, field: "/identities/\(index)/value"),
                    typed: identity.value.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let details = try Self.details(displayName: body.displayName, isVIP: body.isVip, notes: body.notes)
        // The order system retries a create whose answer it lost; without a key it would get a second
        // customer (or, with identities, a 409 naming its own first one).
        let replay = try RequestReplay(input.headers.idempotencyKey, principal: principal, operation: "createCustomer",
                                       target: RequestReplay.noTarget, body: body, logger: logger)
        let customer = try await database.withTransaction { connection in
            if let earlier = try await replay?.earlier(on: connection) {
                guard let survivor = try await customers.survivor(of: earlier, on: connection),
                      let customer = try await customers.live(from: survivor, on: connection) else { throw Problem.internalError }
                return customer
            }
            let id = try await customers.create(details, identities: identities, by: principal, on: connection)
            try await replay?.record(id, on: connection)
            return try await customers.customer(id: id, on: connection)!
        }
        return .created(.init(body: .json(.init(customer))))
    }

    func updateCustomer(_ input: Operations.UpdateCustomer.Input) async throws -> Operations.UpdateCustomer.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        let id = input.path.customerId.uuid
        let details = try Self.details(displayName: body.displayName, isVIP: body.isVip, notes: body.notes)
        guard details.displayName != nil || details.isVIP != nil || details.notes != nil else {
            throw Problem.validationFailed([.init(pointer: nil, message: "give at least one of display_name, is_vip, notes")])
        }
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let customer = try await database.withTransaction { connection in
            try await precondition.check("Customer \(id.lowercased)") { try await customers.lockedVersion(id: id, on: connection) }
            try await customers.update(id, details, by: principal, on: connection)
            return try await customers.customer(id: id, on: connection)!
        }
        tagVersion(customer.version)
        return .ok(.init(body: .json(.init(customer))))
    }

    func addCustomerIdentity(_ input: Operations.AddCustomerIdentity.Input) async throws -> Operations.AddCustomerIdentity.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        let id = input.path.customerId.uuid
        let kind = Customer.Identity.Kind(rawValue: body.kind.rawValue)!
        let value = try IdentityValue.normalize(kind, body.value, field: "/value")
        let (created, customer) = try await database.withTransaction { connection -> (Bool, Customer) in
            // The identity's lock before the customer's, in the order ingest takes them (a mail from
            // this address arriving now): the other way round, each waited for the other. `FOR NO KEY
            // UPDATE`, what the version bump below takes: it keeps a merge of this customer out, and
            // two adds to one customer queue here. Under `FOR SHARE` both got in, and each one's bump
            // then waited for the other's share: a deadlock, a second lost, for an order system
            // pushing a customer's address and phone at once.
            try await IdentityStore(logger: logger).lock(kind: kind, value: value, on: connection)
            let rows = try await connection.run("SELECT merged_into FROM customers WHERE id = \(id) FOR NO KEY UPDATE", logger: logger)
            var live = false
            for try await mergedInto in rows.decode(UUID?.self) { live = mergedInto == nil }
            guard live else { throw try await customers.missingOrMerged(id, on: connection) }
            let created = try await customers.link(kind, value, typed: body.value.trimmingCharacters(in: .whitespacesAndNewlines), to: id, on: connection)
            if created {
                try await EventStore(logger: logger).record(.customerIdentityAdded, customerID: id, actor: principal,
                                                            data: ["kind": kind.rawValue, "value": value], on: connection)
            }
            return (created, try await customers.customer(id: id, on: connection)!)
        }
        return created ? .created(.init(body: .json(.init(customer)))) : .ok(.init(body: .json(.init(customer))))
    }

    func mergeCustomer(_ input: Operations.MergeCustomer.Input) async throws -> Operations.MergeCustomer.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let principal = try principal
        let customer = try await database.withTransaction { connection in
            let survivor = try await CustomerMerge(logger: logger).merge(body.customerId.uuid, into: input.path.customerId.uuid, by: principal, on: connection)
            return try await customers.customer(id: survivor, on: connection)!
        }
        return .ok(.init(body: .json(.init(customer))))
    }

    func getCustomerTimeline(_ input: Operations.GetCustomerTimeline.Input) async throws -> Operations.GetCustomerTimeline.Output {
        let id = input.path.customerId.uuid
        let limit = try PageCursor.limit(input.query.limit)
        // The cursor names the customer whose timeline it pages (a cursor issued before it did has two
        // parts): another customer's cursor read as a position here skipped this one's newest entries.
        let before = try input.query.cursor.map { cursor -> (Int64, UUID, UUID?) in
            let parts = try (try? PageCursor.decode(cursor, count: 3)) ?? PageCursor.decode(cursor, count: 2)
            guard let micros = PageCursor.microseconds(parts[0]), let entry = UUID(uuidString: parts[1]) else { throw PageCursor.invalid }
            guard parts.count == 3 else { return (micros, entry, nil) }
            guard let owner = UUID(uuidString: parts[2]) else { throw PageCursor.invalid }
            return (micros, entry, owner)
        }
        // One snapshot for the survivor and its page: a merge committing between the two left the
        // survivor's tickets under the customer it was merged into, and the page came back empty.
        var (survivor, page) = try await database.withTransaction { connection -> (UUID, [CustomerTimeline.Entry]) in
            try await connection.perform("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            guard let survivor = try await customers.survivor(of: id, on: connection) else {
                throw Problem.notFound("There is no customer \(id.uuidString.lowercased()).")
            }
            // A customer merged since the cursor was issued pages on as its survivor.
            if let owner = before?.2, owner != survivor, try await customers.survivor(of: owner, on: connection) != survivor {
                throw Problem.invalidParameter("cursor", "belongs to another customer's timeline; start this customer's from its first page")
            }
            let position = before.map { ($0.0, $0.1) }
            return (survivor, try await CustomerTimeline(logger: logger).page(customerID: survivor, before: position, limit: limit + 1, on: connection))
        }
        var nextCursor: String?
        if page.count > limit {
            page.removeLast()
            nextCursor = page.last.map { PageCursor.encode([String($0.atMicroseconds), $0.id.uuidString.lowercased(), survivor.lowercased]) }
        }
        PageCursor.setLinkHeader(nextCursor: nextCursor)
        return .ok(.init(body: .json(.init(items: page.map(Components.Schemas.TimelineEntry.init), nextCursor: nextCursor))))
    }

    /// Names are trimmed; a name or note that is only white space is refused rather than stored blank.
    static func details(displayName: String?, isVIP: Bool?, notes: String?) throws -> CustomerStore.Details {
        var errors: [Problem.FieldError] = []
        let name = displayName?.trimmingCharacters(in: .whitespacesAndNewlines)
        if name?.isEmpty == true { errors.append(.init(pointer: "/display_name", message: "is blank")) }
        if name.map({ $0.count > 500 }) == true { errors.append(.init(pointer: "/display_name", message: "is longer than 500 characters")) }
        if notes.map({ $0.count > 20_000 }) == true { errors.append(.init(pointer: "/notes", message: "is longer than 20000 characters")) }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }
        return .init(displayName: name, isVIP: isVIP, notes: notes)
    }
}

extension Components.Schemas.TimelineEntry {
    init(_ entry: CustomerTimeline.Entry) {
        self.init(
            kind: .init(rawValue: entry.kind)!, at: entry.at, ticketId: entry.ticketID.resourceID, ticketNumber: entry.ticketNumber,
            ticketStatus: .init(rawValue: entry.ticketStatus), channel: .init(rawValue: entry.channel)!,
            messageId: entry.messageID.resourceID, direction: entry.direction.flatMap { .init(rawValue: $0) },
            classification: entry.classification.flatMap { .init(rawValue: $0) }, subject: entry.subject, excerpt: entry.excerpt)
    }
}

extension Components.Schemas.Customer {
    init(_ customer: Customer) {
        self.init(
            id: customer.id.resourceID,
            displayName: customer.displayName,
            isVip: customer.isVIP,
            notes: customer.notes,
            mergedInto: customer.mergedInto.resourceID,
            identities: customer.identities.map { identity in
                .init(
                    id: identity.id.resourceID,
                    kind: .init(rawValue: identity.kind.rawValue)!,
                    value: identity.value,
                    verified: identity.verified,
                    undeliverable: identity.undeliverableAt != nil,
                    undeliverableReason: identity.undeliverableReason,
                    createdAt: identity.createdAt)
            },
            createdAt: customer.createdAt,
            updatedAt: customer.updatedAt)
    }
}
