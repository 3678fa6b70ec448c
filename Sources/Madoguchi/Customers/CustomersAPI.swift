import Foundation
import MadoguchiAPI

extension APIHandler {
    func getCustomer(_ input: Operations.GetCustomer.Input) async throws -> Operations.GetCustomer.Output {
        let id = input.path.customerId.uuid
        guard let customer = try await database.withConnection({ try await customers.customer(id: id, on: $0) }) else {
            throw Problem.notFound("There is no customer \(id.uuidString.lowercased()).")
        }
        return .ok(.init(body: .json(.init(customer))))
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
