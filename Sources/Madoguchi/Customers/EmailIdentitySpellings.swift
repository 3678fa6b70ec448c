import Foundation
import Logging
import PostgresNIO

/// Migration 0062's second half: email identities stored before identities took one spelling per
/// mailbox (`IdentityValue.email`) whose domain SQL cannot convert, an internationalized one
/// (`taro@日本語.jp`, whose A-label is Punycode). Looked up in the new form, they would no longer be
/// found: the customer's next form or mail would make a second customer. Converted here, oldest
/// first, never onto an address another identity already holds (the two are one mailbox, for a
/// person to merge). Run by the migrator in 0062's transaction.
enum EmailIdentitySpellings {
    static let migration = 62

    @discardableResult
    static func convert(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.run("""
            SELECT id, value FROM customer_identities WHERE kind = 'email' AND value ~ '[^[:ascii:]]' ORDER BY created_at, id
            """, logger: logger)
        var legacy: [(UUID, String)] = []
        for try await row in rows.decode((UUID, String).self) { legacy.append(row) }
        var converted = 0
        for (id, value) in legacy {
            let canonical = IdentityValue.email(value)
            guard canonical != value else { continue }
            let updated = try await connection.run("""
                UPDATE customer_identities SET value = \(canonical)
                WHERE id = \(id) AND NOT EXISTS (SELECT FROM customer_identities o WHERE o.kind = 'email' AND o.value = \(canonical))
                RETURNING id
                """, logger: logger)
            for try await _ in updated { converted += 1 }
        }
        if converted > 0 { logger.info("email identities converted to one spelling", metadata: ["count": "\(converted)"]) }
        return converted
    }
}
