import Foundation
import Testing
@testable import Madoguchi

/// Walks every request body in `openapi.yaml` and breaks each constraint it states, one member at a
/// time: the validator must name that member. A constraint added to the contract is covered here the
/// day it is written, with no test to add.
@Suite("Requests are held to the contract in openapi.yaml")
struct RequestContractTests {
    /// The gateway endpoints validate their own bodies (and keep every request as sent).
    static let selfValidating: Set<String> = ["ingestWebform", "ingestSms", "ingestChat"]

    /// (JSON pointer, a body that breaks one constraint at that pointer, what was broken).
    static func violations(of schema: Contract.Schema, in contract: Contract, at pointer: String = "", seen: Set<String> = [], depth: Int = 0)
        -> [(String, Any, String)]
    {
        guard depth < 8 else { return [] }
        var seen = seen
        if let name = schema.reference {
            guard !seen.contains(name) else { return [] }
            seen.insert(name)
        }
        let schema = contract.resolved(schema)
        var found: [(String, Any, String)] = []
        switch schema.type {
        case "string":
            if let maximum = schema.maxLength { found.append((pointer, String(repeating: "x", count: maximum + 1), "maxLength")) }
            if let minimum = schema.minLength, minimum > 0 { found.append((pointer, String(repeating: "x", count: minimum - 1), "minLength")) }
            if schema.pattern != nil { found.append((pointer, "Not Valid !", "pattern")) }
        case "integer", "number":
            if let minimum = schema.minimum { found.append((pointer, minimum - 1, "minimum")) }
            if let maximum = schema.maximum { found.append((pointer, maximum + 1, "maximum")) }
            if let bound = schema.exclusiveMinimum { found.append((pointer, bound, "exclusiveMinimum")) }
            if let bound = schema.exclusiveMaximum { found.append((pointer, bound, "exclusiveMaximum")) }
        case "array":
            if let maximum = schema.maxItems { found.append((pointer, Array(repeating: "x", count: maximum + 1), "maxItems")) }
            if let minimum = schema.minItems, minimum > 0 { found.append((pointer, [Any](), "minItems")) }
            if let items = schema.items {
                for (inner, value, what) in violations(of: items, in: contract, at: pointer + "/0", seen: seen, depth: depth + 1) {
                    found.append((inner, [value], what))
                }
            }
        default:
            for (key, member) in schema.properties {
                found.append((pointer + "/" + key, [key: NSNull()], "null"))
                for (inner, value, what) in violations(of: member, in: contract, at: pointer + "/" + key, seen: seen, depth: depth + 1) {
                    found.append((inner, [key: value], what))
                }
            }
        }
        return found
    }

    @Test("every length, pattern, range, item count and non-null member of every request body is enforced, naming the member")
    func everyConstraint() throws {
        let contract = Contract.bundled
        var checked = 0
        var kinds = Set<String>()
        for (operation, schema) in contract.requestBodies.sorted(by: { $0.key < $1.key }) where !Self.selfValidating.contains(operation) {
            for (pointer, body, what) in Self.violations(of: schema, in: contract) {
                let problems = contract.problems(in: body, operation: operation).values
                #expect(problems.contains { $0.pointer == pointer }, "\(operation): \(what) at \(pointer) not reported (got \(problems))")
                checked += 1
                kinds.insert(what)
            }
        }
        // The walk reached the contract: operations with bodies, and each kind of constraint it uses.
        #expect(contract.requestBodies.count >= 30)
        #expect(checked > 300, "only \(checked) constraints walked")
        #expect(kinds == ["maxLength", "minLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxItems", "minItems", "null"])
    }

    @Test("a body within the contract has nothing to report; wrong types are left to the decoder")
    func validBodies() throws {
        let contract = Contract.bundled
        #expect(contract.problems(in: ["name": "返品", "keywords": ["返品"], "queue": "returns", "position": 3], operation: "createRule").values.isEmpty)
        #expect(contract.problems(in: ["name": 12, "keywords": "返品"], operation: "createRule").values.isEmpty)
        let problems = contract.problems(in: ["name": "", "category": String(repeating: "長", count: 201), "tags": [String](repeating: "t", count: 21)],
                                         operation: "createRule").values
        #expect(problems.map(\.pointer) == ["/category", "/name", "/tags"])
        #expect(problems.first?.message == "must be at most 200 characters (it has 201)")
        // As the server reads them: JSON numbers 0 and 1 are NSNumbers that also cast to Bool, yet
        // are held to their ranges; true and false are not numbers at all.
        let json = { (text: String) in try JSONSerialization.jsonObject(with: Data(text.utf8)) }
        #expect(contract.problems(in: try json(#"{"display_name":"A","capacity":0}"#), operation: "createAgent").values.map(\.pointer) == ["/capacity"])
        #expect(contract.problems(in: try json(#"{"display_name":"A","capacity":1,"requires_approval":true}"#), operation: "createAgent").values.isEmpty)
        // A date-time the decoder could not read, named (its reader is given no member's path).
        let dates = contract.problems(in: ["form_id": "f", "submission_id": "s", "body": "x", "submitted_at": "yesterday"], operation: "ingestWebform")
        #expect(dates.unreadable.map(\.pointer) == ["/submitted_at"] && dates.values.isEmpty)
        #expect(contract.problems(in: ["form_id": "f", "submission_id": "s", "body": "x", "submitted_at": "0999-01-01T00:00:00Z"],
                                  operation: "ingestWebform").unreadable.map(\.pointer) == ["/submitted_at"])
        #expect(contract.problems(in: ["form_id": "f", "submission_id": "s", "body": "x", "submitted_at": "2026-12-07T06:30:00.123+09:00"],
                                  operation: "ingestWebform").unreadable.isEmpty)
    }
}
