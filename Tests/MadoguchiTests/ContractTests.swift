import Foundation
import Testing
@testable import Madoguchi

/// openapi.yaml is the contract callers read; these checks keep the server's access rules and the
/// document saying the same thing.
@Suite("openapi.yaml agrees with the server")
struct ContractTests {
    /// (operationId, roles) for each operation, read line by line: the document keeps
    /// `x-madoguchi-roles: [...]` on one line after each `operationId:`.
    static func documentedRoles() throws -> [String: [String]] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("openapi.yaml").path
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var result: [String: [String]] = [:]
        var current: String?
        for line in lines {
            if line.hasPrefix("operationId:") {
                current = line.dropFirst("operationId:".count).trimmingCharacters(in: .whitespaces)
                result[current!] = nil
            } else if line.hasPrefix("x-madoguchi-roles:"), let operation = current {
                let list = line.dropFirst("x-madoguchi-roles:".count).trimmingCharacters(in: CharacterSet(charactersIn: " []"))
                result[operation] = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                current = nil
            }
        }
        return result
    }

    @Test("every operation declares its roles, and they are exactly the ones the server enforces")
    func rolesMatch() throws {
        let documented = try Self.documentedRoles()
        let enforced = OperationAccess.roles.mapValues { $0.map(\.rawValue).sorted() }
        let keyless = OperationAccess.publicOperations.union(OperationAccess.providerSignedOperations)
        for operation in keyless {
            #expect(documented[operation] == [], "\(operation) takes no API key, so its x-madoguchi-roles must be []")
        }
        for (operation, roles) in documented where !keyless.contains(operation) {
            #expect(enforced[operation] == roles.sorted(), "\(operation): document says \(roles), server enforces \(enforced[operation] ?? [])")
        }
        #expect(Set(documented.keys) == Set(enforced.keys).union(keyless))
    }
}
