import Foundation

/// The request bodies `openapi.yaml` describes, read from its JSON form (embedded at build time), and
/// what the generated decoder leaves unchecked: it refuses wrong types, missing and unknown members,
/// but takes a 5,000-character category, a template `order` of a million, or `null` for a field that
/// may not be null. `problems(in:operation:)` finds those, each with the JSON pointer of the member
/// and what the contract says, for the 422 `validation-failed` every handler already answers with.
///
/// Types, required and unknown members and enum values are left to the decoder (a 400 naming the
/// member): this only checks values of the right type against lengths, patterns, ranges and item
/// counts, and that nothing is null (no schema in the contract allows null).
final class Contract: Sendable {
    /// The subset of JSON Schema the contract uses.
    final class Schema: Sendable {
        let reference: String?
        let type: String?
        let properties: [String: Schema]
        /// `required`: members an object must have.
        let required: [String]
        let additionalProperties: Schema?
        /// `additionalProperties: false`: no member but `properties`.
        let closed: Bool
        let items: Schema?
        let minLength: Int?
        let maxLength: Int?
        let pattern: String?
        /// `format`: only `date-time` is checked (RFC 3339 within the years 1000–9999, as the decoder reads it).
        let format: String?
        let minItems: Int?
        let maxItems: Int?
        let minimum: Double?
        let maximum: Double?
        let exclusiveMinimum: Double?
        let exclusiveMaximum: Double?
        /// `enum`: the values a string may take.
        let allowed: [String]?

        init(_ json: [String: Any]) {
            reference = (json["$ref"] as? String).map { String($0.split(separator: "/").last ?? "") }
            type = json["type"] as? String
            properties = ((json["properties"] as? [String: Any]) ?? [:]).compactMapValues { ($0 as? [String: Any]).map(Schema.init) }
            required = json["required"] as? [String] ?? []
            additionalProperties = (json["additionalProperties"] as? [String: Any]).map(Schema.init)
            closed = json["additionalProperties"] as? Bool == false
            items = (json["items"] as? [String: Any]).map(Schema.init)
            minLength = json["minLength"] as? Int
            maxLength = json["maxLength"] as? Int
            pattern = json["pattern"] as? String
            format = json["format"] as? String
            minItems = json["minItems"] as? Int
            maxItems = json["maxItems"] as? Int
            func number(_ key: String) -> Double? { (json[key] as? NSNumber)?.doubleValue }
            minimum = number("minimum")
            maximum = number("maximum")
            exclusiveMinimum = number("exclusiveMinimum")
            exclusiveMaximum = number("exclusiveMaximum")
            allowed = (json["enum"] as? [Any])?.compactMap { $0 as? String }
        }
    }

    /// `#/components/schemas/…` by name.
    let schemas: [String: Schema]
    /// The `application/json` request body of each operation that has one, by operation id.
    let requestBodies: [String: Schema]
    /// Each operation's query and header parameters by name (header names lowercased), by operation id.
    let parameters: [String: [Parameter]]
    /// The media types each operation's 2xx answers come in, by operation id.
    let successMediaTypes: [String: Set<String>]
    /// Operations whose query may hold parameters of the caller's own (`x-madoguchi-any-query`): the
    /// provider webhooks, at whatever URL the operator set at the provider.
    let operationsTakingAnyQuery: Set<String>

    struct Parameter: Sendable {
        enum Location: String, Sendable { case query, header }
        let name: String
        let location: Location
        let schema: Schema
        var required = false
    }

    init(json: Data) throws {
        guard let document = try JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw ContractError("openapi.json is not an object")
        }
        let components = (document["components"] as? [String: Any])?["schemas"] as? [String: Any] ?? [:]
        schemas = components.compactMapValues { ($0 as? [String: Any]).map(Schema.init) }
        let sharedParameters = (document["components"] as? [String: Any])?["parameters"] as? [String: Any] ?? [:]
        let sharedResponses = (document["components"] as? [String: Any])?["responses"] as? [String: Any] ?? [:]
        var bodies: [String: Schema] = [:]
        var parameters: [String: [Parameter]] = [:]
        var mediaTypes: [String: Set<String>] = [:]
        var anyQuery: Set<String> = []
        for case let item as [String: Any] in ((document["paths"] as? [String: Any]) ?? [:]).values {
            for case let operation as [String: Any] in item.values {
                guard let id = operation["operationId"] as? String else { continue }
                if operation["x-madoguchi-any-query"] as? Bool == true { anyQuery.insert(id) }
                for case var parameter as [String: Any] in (operation["parameters"] as? [Any]) ?? [] {
                    if let reference = parameter["$ref"] as? String,
                       let shared = sharedParameters[String(reference.split(separator: "/").last ?? "")] as? [String: Any] {
                        parameter = shared
                    }
                    guard let name = parameter["name"] as? String, let location = (parameter["in"] as? String).flatMap(Parameter.Location.init),
                          let schema = parameter["schema"] as? [String: Any]
                    else { continue }
                    parameters[id, default: []].append(
                        Parameter(name: location == .header ? name.lowercased() : name, location: location, schema: Schema(schema),
                                  required: parameter["required"] as? Bool ?? false))
                }
                for case var (status, response as [String: Any]) in (operation["responses"] as? [String: Any]) ?? [:] where status.hasPrefix("2") {
                    if let reference = response["$ref"] as? String,
                       let shared = sharedResponses[String(reference.split(separator: "/").last ?? "")] as? [String: Any] {
                        response = shared
                    }
                    mediaTypes[id, default: []].formUnion(((response["content"] as? [String: Any]) ?? [:]).keys.map { $0.lowercased() })
                }
                guard let content = (operation["requestBody"] as? [String: Any])?["content"] as? [String: Any],
                      let schema = (content["application/json"] as? [String: Any])?["schema"] as? [String: Any]
                else { continue }
                bodies[id] = Schema(schema)
            }
        }
        requestBodies = bodies
        self.parameters = parameters
        successMediaTypes = mediaTypes
        operationsTakingAnyQuery = anyQuery
    }

    /// The contract this binary was built with.
    static let bundled: Contract = {
        do {
            return try Contract(json: Data((EmbeddedResources.files["openapi.json"] ?? "").utf8))
        } catch {
            fatalError("the embedded openapi.json does not load: \(error)")
        }
    }()

    /// What a body breaks, in two kinds. `unreadable`: what the decoder could not read — a member of
    /// the wrong JSON type, one missing, one the object does not take, a value outside its enum, a
    /// date-time that is none — each a 400 as the decoder's own would be, but all of them named at
    /// once (the decoder stops at the first, and its date reader is given no member's path);
    /// `values`: every other rule, the 422.
    func problems(in body: Any, operation: String) -> (unreadable: [Problem.FieldError], values: [Problem.FieldError]) {
        guard let schema = requestBodies[operation] else { return ([], []) }
        var found = Findings()
        check(body, against: schema, at: "", into: &found)
        return (found.unreadable, found.values)
    }

    private struct Findings {
        var values: [Problem.FieldError] = []
        var unreadable: [Problem.FieldError] = []
    }

    /// What is wrong with the query and header parameters of a request, each named by its parameter:
    /// lengths, patterns and ranges, as for bodies, NUL anywhere (PostgreSQL text cannot hold it), a
    /// required one missing, a one-value one given twice, an integer, number or boolean that is not
    /// one. Other values the decoder cannot read as their type are left to the decoder's own 400.
    func problems(inQuery query: [(name: String, value: String)], headers: [(name: String, value: String)], operation: String) -> [Problem.FieldError] {
        var found: [Problem.FieldError] = []
        let known = parameters[operation] ?? []
        // Missing ones are named here: the decoder says only that "a parameter" was null.
        for parameter in known where parameter.location == .query && parameter.required && !query.contains(where: { $0.name == parameter.name }) {
            found.append(.init(pointer: parameter.name, message: "is required"))
        }
        // A parameter of one value given twice (`channel=sms&channel=email`) was read as its first
        // value alone: a dashboard showed sms figures for "sms and email" without a sign.
        var seen: [String: Int] = [:]
        for item in query { seen[item.name, default: 0] += 1 }
        for parameter in known where parameter.location == .query && (seen[parameter.name] ?? 0) > 1 && resolved(parameter.schema).type != "array" {
            found.append(.init(pointer: parameter.name, message: "is given \(seen[parameter.name]!) times, but takes one value"
                               + (parameter.name == "types" ? " (several go comma-separated: types=ticket.created,reply.sent)" : "")))
        }
        var reported: Set<String> = []
        for (location, items) in [(Parameter.Location.query, query), (.header, headers)] {
            for item in items {
                let name = location == .header ? item.name.lowercased() : item.name
                guard let parameter = known.first(where: { $0.location == location && $0.name == name }) else {
                    // A misspelt filter (`?stauts=open`) ignored would answer every ticket as if it
                    // had been applied: a dashboard would show wrong figures without a sign.
                    if location == .query && !operationsTakingAnyQuery.contains(operation) {
                        found.append(.init(pointer: Text.clean(String(item.name.prefix(100))), message: Self.unknownQueryMessage(known)))
                    }
                    continue
                }
                if item.value.contains("\u{0}") {
                    found.append(.init(pointer: parameter.name, message: "must not contain the NUL character"))
                    continue
                }
                let schema = valueSchema(parameter)
                // Named here by the parameter itself; the decoder's own message named the first
                // parameter it could not tell apart (`from: '2026-12-07' is not valid: expected a boolean`).
                func wrongType(_ what: String) {
                    guard reported.insert(parameter.name).inserted else { return }
                    found.append(.init(pointer: parameter.name, message: "'\(Text.clean(String(item.value.prefix(100))))' is not \(what)"))
                }
                var findings = Findings()
                defer { found += findings.unreadable + findings.values }
                switch schema.type {
                case "string":
                    check(item.value, against: schema, at: parameter.name, into: &findings)
                case "integer":
                    guard let number = Int(item.value) else { wrongType("an integer"); continue }
                    check(NSNumber(value: number), against: schema, at: parameter.name, into: &findings)
                case "number":
                    guard let number = Double(item.value) else { wrongType("a number"); continue }
                    check(NSNumber(value: number), against: schema, at: parameter.name, into: &findings)
                case "boolean":
                    if !["true", "false"].contains(item.value) { wrongType("true or false") }
                default:
                    continue
                }
            }
        }
        return found
    }

    /// What a query parameter the operation does not take is told, with the ones it does take.
    static func unknownQueryMessage(_ known: [Parameter]) -> String {
        let names = known.filter { $0.location == .query }.map(\.name).sorted()
        return names.isEmpty
            ? "is not a parameter of this operation, which takes no query parameters"
            : "is not a parameter of this operation, which takes: " + names.joined(separator: ", ")
    }

    /// The values a member of `operation`'s request body may take (`path`: its keys and indexes from
    /// the top), when its schema lists them.
    func allowedValues(operation: String, bodyPath path: [String]) -> [String]? {
        guard var schema = requestBodies[operation].map(resolved) else { return nil }
        for key in path {
            if let property = schema.properties[key] {
                schema = resolved(property)
            } else if Int(key) != nil, let items = schema.items {
                schema = resolved(items)
            } else if let additional = schema.additionalProperties {
                schema = resolved(additional)
            } else {
                return nil
            }
        }
        if schema.type == "array", let items = schema.items { return resolved(items).allowed }
        return schema.allowed
    }

    /// The values a query parameter of `operation` may take, when its schema (or its items') lists them.
    func allowedValues(operation: String, parameter name: String) -> [String]? {
        guard let parameter = parameters[operation]?.first(where: { $0.location == .query && $0.name == name }) else { return nil }
        return valueSchema(parameter).allowed
    }

    /// What one value of the parameter must be: its schema, or its items' for a list (`status=open,pending`).
    private func valueSchema(_ parameter: Parameter) -> Schema {
        let schema = resolved(parameter.schema)
        if schema.type == "array", let items = schema.items { return resolved(items) }
        return schema
    }

    func resolved(_ schema: Schema) -> Schema {
        var schema = schema
        var hops = 0
        while let name = schema.reference, let target = schemas[name], hops < 20 {
            schema = target
            hops += 1
        }
        return schema
    }

    private func check(_ value: Any, against schema: Schema, at pointer: String, into found: inout Findings) {
        let schema = resolved(schema)
        func problem(_ message: String) { found.values.append(.init(pointer: pointer.isEmpty ? nil : pointer, message: message)) }
        func unreadable(_ message: String) { found.unreadable.append(.init(pointer: pointer.isEmpty ? nil : pointer, message: message)) }
        if value is NSNull {
            problem("must not be null")
            return
        }
        // JSON true and false come as a boolean NSNumber (objCType "c"). `value is Bool` will not do:
        // every NSNumber 0 or 1 casts to Bool, and those numbers would escape their ranges.
        let number = value as? NSNumber
        let isBoolean = number.map { String(cString: $0.objCType) == "c" } ?? false
        switch schema.type {
        case "string" where !(value is String): unreadable("expected a string")
        case "integer" where number == nil || isBoolean || number!.doubleValue.rounded() != number!.doubleValue: unreadable("expected an integer")
        case "number" where number == nil || isBoolean: unreadable("expected a number")
        case "boolean" where !isBoolean: unreadable("expected true or false")
        case "array" where !(value is [Any]): unreadable("expected an array")
        case "object" where !(value is [String: Any]): unreadable("expected an object")
        default: break
        }
        switch schema.type {
        case "string":
            guard let text = value as? String else { return }
            if let allowed = schema.allowed, !allowed.isEmpty, !allowed.contains(text) {
                unreadable("'\(Text.clean(String(text.prefix(100))))' is not one of \(allowed.joined(separator: ", "))")
                return
            }
            let length = text.unicodeScalars.count
            if let minimum = schema.minLength, length < minimum {
                problem(minimum == 1 ? "must not be empty" : "must be at least \(minimum) characters")
            }
            if let maximum = schema.maxLength, length > maximum { problem("must be at most \(maximum) characters (it has \(length))") }
            if let pattern = schema.pattern, let regex = try? Regex(pattern), (try? regex.firstMatch(in: text)) == nil {
                problem("must match \(pattern)")
            }
            if schema.format == "date-time", RFC3339.date(text) == nil { unreadable(UTCSecondsDateTranscoder.unreadable(text)) }
        case "integer", "number":
            guard let number, !isBoolean else { return }
            let x = number.doubleValue
            let shown: (Double) -> String = { $0.rounded() == $0 ? String(Int64($0)) : String($0) }
            if let minimum = schema.minimum, x < minimum { problem("must be at least \(shown(minimum))") }
            if let maximum = schema.maximum, x > maximum { problem("must be at most \(shown(maximum))") }
            if let bound = schema.exclusiveMinimum, x <= bound { problem("must be more than \(shown(bound))") }
            if let bound = schema.exclusiveMaximum, x >= bound { problem("must be less than \(shown(bound))") }
        case "array":
            guard let items = value as? [Any] else { return }
            if let minimum = schema.minItems, items.count < minimum { problem("needs at least \(minimum) item\(minimum == 1 ? "" : "s")") }
            if let maximum = schema.maxItems, items.count > maximum { problem("may have at most \(maximum) items (it has \(items.count))") }
            if let itemSchema = schema.items {
                for (index, item) in items.enumerated() { check(item, against: itemSchema, at: pointer + "/\(index)", into: &found) }
            }
        case "object", nil:
            guard let object = value as? [String: Any] else { return }
            func escaped(_ key: String) -> String { key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1") }
            for key in schema.required where object[key] == nil {
                found.unreadable.append(.init(pointer: pointer + "/" + escaped(key), message: "is required"))
            }
            for (key, member) in object.sorted(by: { $0.key < $1.key }) {
                if let memberSchema = schema.properties[key] ?? schema.additionalProperties {
                    check(member, against: memberSchema, at: pointer + "/" + escaped(key), into: &found)
                } else if schema.closed {
                    let members = schema.properties.keys.sorted().joined(separator: ", ")
                    found.unreadable.append(.init(pointer: pointer + "/" + escaped(String(key.prefix(100))), message: "is not a member here (members: \(members))"))
                }
            }
        default:
            return
        }
    }
}

struct ContractError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
