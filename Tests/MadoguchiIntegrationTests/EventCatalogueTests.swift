import Foundation
import MadoguchiAPI
import PostgresNIO
import Testing
@testable import Madoguchi

/// The event names are a contract with other systems: Swift's catalogue, the database's and the
/// document's must be one list.
@Suite("The event catalogue", .timeLimit(.minutes(15)))
struct EventCatalogueTests {
    static let catalogue = Set(EventType.allCases.map(\.rawValue))

    @Test("openapi.yaml's EventType lists exactly the catalogue")
    func documented() {
        let documented = Set(Components.Schemas.EventType.allCases.map(\.rawValue))
        #expect(documented == Self.catalogue, "only in the document: \(documented.subtracting(Self.catalogue)); only in Swift: \(Self.catalogue.subtracting(documented))")
    }

    @Test("the payload check refuses a missing, an undocumented and a mistyped member, and a time in another form")
    func payloadCheckBites() throws {
        let agent = UUID().uuidString.lowercased()
        func passes(_ type: EventType, _ json: String) -> Bool {
            (try? EventPayloadCheck.decode(type, data: Data(json.utf8))) != nil
        }
        #expect(passes(.ticketClaimed, #"{"agent_id":"\#(agent)","expires_at":"2026-12-01T18:00:00Z","via":"queue"}"#))
        #expect(!passes(.ticketClaimed, #"{"agent_id":"\#(agent)","expires_at":"2026-12-01T18:00:00Z"}"#))
        #expect(!passes(.ticketClaimed, #"{"agent_id":"\#(agent)","expires_at":"2026-12-01T18:00:00Z","via":"queue","extra":1}"#))
        #expect(!passes(.ticketClaimed, #"{"agent_id":"\#(agent)","expires_at":"2026-12-01T18:00:00Z","via":"elsewhere"}"#))
        #expect(!passes(.ticketClaimed, #"{"agent_id":"\#(agent)","expires_at":"2026-12-01 18:00:00.123+00","via":"queue"}"#))
        #expect(!passes(.customerMerged, #"{"merged_customer_id":"\#(agent)","identities_moved":"2","tickets_moved":1,"messages_moved":1}"#))
        #expect(!passes(.ticketUpdated, #"{"changes":{"colour":{"from":"a","to":"b"}},"version":2}"#))
    }

    @Test("the database accepts exactly the catalogue's names and refuses any other")
    func databaseAgrees() async throws {
        try await TestApp.run(checksEventPayloads: false) { app in
            let stored = try await app.database.withConnection { connection in
                let rows = try await connection.query("SELECT name FROM event_types", logger: TestCluster.logger)
                var names = Set<String>()
                for try await name in rows.decode(String.self) { names.insert(name) }
                return names
            }
            #expect(stored == Self.catalogue, "only in the database: \(stored.subtracting(Self.catalogue)); only in Swift: \(Self.catalogue.subtracting(stored))")
            await SchemaTests.expectRefused(app, .foreignKeyViolation, "INSERT INTO events (type) VALUES ('ticket.misspelt')")
            try await app.execute("INSERT INTO events (type) VALUES (\(EventType.ticketUpdated.rawValue))")
        }
    }

    @Test("migration 0057 leaves earlier webhook.created events with the endpoint's host only, and events append-only again")
    func webhookCreatedRedacted() async throws {
        try await TestApp.run { app in
            let id = UUID().uuidString.lowercased()
            let old = #"{"webhook_id":"\#(id)","url":"https://hooks.slack.example/services/T0/B0/secret-token"}"#
            try await app.execute("INSERT INTO events (type, data) VALUES ('webhook.created', \(old)::text::jsonb)")
            try await app.rerunMigration("0057_webhook_created_host_only.sql")
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'webhook.created' AND data = jsonb_build_object('webhook_id', \(id)::text, 'host', 'hooks.slack.example')") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE data::text LIKE '%secret-token%'") == 0)
            await SchemaTests.expectRefused(app, .insufficientPrivilege, "UPDATE events SET data = '{}' WHERE type = 'webhook.created'")
        }
    }
}
