import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

/// The invariants the core schema enforces by itself, whatever code writes to it.
@Suite("Core schema constraints", .timeLimit(.minutes(15)))
struct SchemaTests {
    static func expectRefused(_ app: TestApp, _ state: SQLState, _ query: PostgresQuery, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await app.execute(query)
            Issue.record("expected SQLSTATE \(state.rawValue), the statement succeeded", sourceLocation: sourceLocation)
        } catch {
            #expect(error.sqlState == state, "\(String(reflecting: error))", sourceLocation: sourceLocation)
        }
    }

    @Test("raw mails, bodies and attachments are compressed with lz4 (migration 0040), not pglz")
    func largeValuesUseLZ4() async throws {
        try await TestApp.run { app in
            let columns = ["inbound_payloads.body", "messages.body_text", "messages.body_html", "messages.visible_text",
                           "messages.quoted_text", "attachments.content", "reply_attachments.content", "outbox.message"]
            for column in columns {
                let parts = column.split(separator: ".").map(String.init)
                #expect(try await app.count("""
                    SELECT count(*) FROM pg_attribute
                    WHERE attrelid = \(parts[0])::regclass AND attname = \(parts[1]) AND attcompression = 'l'
                    """) == 1, "\(column)")
            }
            // And a large body written now is stored with it.
            try await app.execute("INSERT INTO inbound_payloads (channel, content_type, body) VALUES ('email', 'message/rfc822', convert_to(repeat('窓口', 5000), 'UTF8'))")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE pg_column_compression(body) = 'lz4'") == 1)
        }
    }

    @Test("one identity belongs to one customer")
    func uniqueIdentity() async throws {
        try await TestApp.run { app in
            let first = try await app.customer(email: "taro@example.jp")
            let second = try await app.customer()
            _ = first
            await Self.expectRefused(app, .uniqueViolation, """
                INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(second), 'email', 'taro@example.jp')
                """)
            await Self.expectRefused(app, .checkViolation, """
                INSERT INTO customer_identities (customer_id, kind, value) VALUES (\(second), 'fax', '0312345678')
                """)
        }
    }

    @Test("the same provider message id arrives once per channel; the same idempotency key once per channel")
    func uniqueInbound() async throws {
        try await TestApp.run { app in
            let customer = try await app.customer()
            let ticket = try await app.ticket(customer: customer)
            let insert: PostgresQuery = """
                INSERT INTO messages (ticket_id, customer_id, direction, channel, provider, provider_message_id)
                VALUES (\(ticket), \(customer), 'inbound', 'sms', 'twilio', 'SM123')
                """
            try await app.execute(insert)
            await Self.expectRefused(app, .uniqueViolation, insert)
            // Another channel, or an outbound message, may carry the same provider id.
            try await app.execute("""
                INSERT INTO messages (ticket_id, customer_id, direction, channel, provider, provider_message_id)
                VALUES (\(ticket), \(customer), 'inbound', 'chat', 'twilio', 'SM123')
                """)

            let payload: PostgresQuery = """
                INSERT INTO inbound_payloads (channel, idempotency_key, request_fingerprint, body)
                VALUES ('webform', 'key-1', sha256('a'::bytea), 'a'::bytea)
                """
            try await app.execute(payload)
            await Self.expectRefused(app, .uniqueViolation, payload)
            // A request refused before processing does not reserve the key.
            try await app.execute("""
                INSERT INTO inbound_payloads (channel, idempotency_key, request_fingerprint, body, parse_status)
                VALUES ('webform', 'key-1', sha256('b'::bytea), 'b'::bytea, 'rejected')
                """)
        }
    }

    @Test("statuses, priorities and claims are checked; events cannot be rewritten")
    func checks() async throws {
        try await TestApp.run(checksEventPayloads: false) { app in
            let customer = try await app.customer()
            await Self.expectRefused(app, .checkViolation, "INSERT INTO tickets (customer_id, channel, status) VALUES (\(customer), 'email', 'done')")
            await Self.expectRefused(app, .checkViolation, "INSERT INTO tickets (customer_id, channel, priority) VALUES (\(customer), 'email', 'asap')")
            await Self.expectRefused(app, .checkViolation, "INSERT INTO tickets (customer_id, channel) VALUES (\(customer), 'fax')")
            let ticket = try await app.ticket(customer: customer)
            await Self.expectRefused(app, .checkViolation, "UPDATE tickets SET claim_expires_at = now() WHERE id = \(ticket)")
            await Self.expectRefused(app, .foreignKeyViolation, "INSERT INTO tickets (customer_id, channel) VALUES (\(UUID()), 'email')")

            try await app.execute("INSERT INTO events (type, ticket_id) VALUES ('ticket.created', \(ticket))")
            await Self.expectRefused(app, .checkViolation, "INSERT INTO events (type) VALUES ('Ticket Created')")
            do {
                try await app.execute("UPDATE events SET type = 'ticket.deleted'")
                Issue.record("events must be append-only")
            } catch {
                #expect(String(reflecting: error).contains("append-only"))
            }
        }
    }
}
