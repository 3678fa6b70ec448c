// The HTTP contract, generated at build time by swift-openapi-generator from the top-level
// openapi.yaml (symlinked here). Everything else in this module is generated.

import Foundation

/// What `#/components/schemas/Identifier` (`format: uuid`) decodes to, through the generator's
/// `typeOverrides`.
///
/// A wrapper rather than `Foundation.UUID` itself for two reasons: UUID's own `Codable` writes upper
/// case, while PostgreSQL, RFC 9562 and most clients use lower case; and the generated files import only
/// a few Foundation structs by name, which on Linux leaves `Foundation.UUID` out of their sight.
public struct ResourceID: Codable, Hashable, Sendable, CustomStringConvertible {
    public let uuid: UUID

    public init(_ uuid: UUID) { self.uuid = uuid }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let uuid = UUID(uuidString: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a UUID (such as 3f2c1e9a-8b7d-4c6e-9f10-2a3b4c5d6e7f)")
        }
        self.uuid = uuid
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String { uuid.uuidString.lowercased() }
}
