import Foundation
import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("Health, metrics and the OpenAPI document", .timeLimit(.minutes(15)))
struct OperationsTests {
    @Test("live and ready answer without a key; ready reports the schema version")
    func health() async throws {
        try await TestApp.run { app in
            let live = try await app.request(.get, "/health/live")
            #expect(live.status == .ok)
            let ready = try await app.request(.get, "/health/ready")
            #expect(ready.status == .ok)
            #expect(try ready.json["schema_version"] as? Int == Migrator.bundled().latestVersion)
        }
    }

    @Test("ready is 503 while a migration this build knows is missing")
    func notReadyWhenBehind() async throws {
        try await TestApp.run { app in
            // Pretend the newest migration was never applied.
            try await app.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
            let ready = try await app.request(.get, "/health/ready")
            #expect(ready.status == .serviceUnavailable)
            #expect(ready.headers[.contentType] == "application/problem+json")
            #expect(try ready.json["type"] as? String == "https://madoguchi.dev/problems/not-ready")
        }
    }

    @Test("/openapi.yaml is served byte for byte")
    func openAPIDocument() async throws {
        let onDisk = try String(contentsOfFile: RepositoryFiles.path("openapi.yaml"), encoding: .utf8)
        try await TestApp.run { app in
            let response = try await app.request(.get, "/openapi.yaml")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/yaml")
            #expect(response.text == onDisk)
        }
    }

    @Test("/metrics counts requests by operation and status, and reports the pool")
    func metrics() async throws {
        try await TestApp.run { app in
            try await app.request(.get, "/health/live")
            try await app.request(.get, "/v1/tickets")  // 401
            let metrics = try await app.request(.get, "/metrics").text
            #expect(metrics.contains(#"madoguchi_http_requests_total{operation="getLive",method="GET",status="200"} 1"#))
            #expect(metrics.contains(#"madoguchi_http_requests_total{operation="listTickets",method="GET",status="401"} 1"#))
            #expect(metrics.contains("madoguchi_http_request_duration_seconds_bucket"))
            #expect(metrics.contains("madoguchi_db_connections_max 20"))
            #expect(metrics.contains("madoguchi_db_connections_in_use"))
        }
    }

    @Test("every response carries a request id; a sane caller id is echoed, a hostile one replaced")
    func requestIDs() async throws {
        try await TestApp.run { app in
            let generated = try await app.request(.get, "/health/live")
            #expect(generated.headers[.xRequestID]?.count == 36)
            let echoed = try await app.request(.get, "/health/live", headers: [.xRequestID: "gw-42.retry_1"])
            #expect(echoed.headers[.xRequestID] == "gw-42.retry_1")
            let hostile = try await app.request(.get, "/nope", headers: [.xRequestID: "a b\"c"])
            #expect(hostile.headers[.xRequestID] != "a b\"c")
            #expect(try hostile.json["request_id"] as? String == hostile.headers[.xRequestID])
        }
    }
}

/// Files of the repository, found from this source file's location.
enum RepositoryFiles {
    static func path(_ relative: String) -> String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(relative).path
    }
}
