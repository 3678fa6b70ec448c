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

    @Test("ready waits for the report views too: between the last migration and the views' creation a worker met a missing view")
    func readyNeedsViews() async throws {
        try await TestApp.run { app in
            #expect(try await app.request(.get, "/health/ready").status == .ok)
            try await app.execute("DROP VIEW report_response_zones CASCADE")
            let missing = try await app.request(.get, "/health/ready")
            try expectProblem(missing, .serviceUnavailable, "not-ready")
            #expect((try missing.json["detail"] as? String)?.contains("report views") == true, "\(missing.text)")
            // As a start does after migrating: the views again, and ready.
            _ = try await Migrator.bundled().migrate(app.database, logger: TestCluster.logger)
            #expect(try await app.request(.get, "/health/ready").status == .ok)
        }
    }

    @Test("events with transaction ids ahead of the database's (a pg_dump restored into a new cluster): the feed is 503 naming the epoch to set; ready and the rest go on")
    func eventIdsAhead() async throws {
        // The events written here are not ones the service would write: their payloads are not checked.
        try await TestApp.run(checksEventPayloads: false) { app in
            let dashboard = try await app.keySecret(.dashboard)
            #expect(try await app.request(.get, "/v1/events", key: dashboard).status == .ok)
            // As a restore leaves it: the ids came back as data, the counter started again below them.
            try await app.execute("""
                INSERT INTO events (type, xid) VALUES ('agent.created', ((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 100000)::text)::xid8)
                """)
            let stalled = try await app.request(.get, "/v1/events", key: dashboard)
            try expectProblem(stalled, .serviceUnavailable, "feed-stalled")
            #expect((try stalled.json["detail"] as? String)?.contains("pg_resetwal -e 1") == true, "\(stalled.text)")
            try expectProblem(try await app.request(.get, "/v1/events/stream", key: dashboard), .serviceUnavailable, "feed-stalled")
            // A managed PostgreSQL cannot run pg_resetwal: the rest of the service stays in rotation.
            #expect(try await app.request(.get, "/health/ready").status == .ok)
        }
        // A webhook endpoint's cursor restored the same way is caught as well.
        try await TestApp.run { app in
            try await app.execute("""
                INSERT INTO webhook_endpoints (url, secrets, cursor_xid, cursor_event)
                VALUES ('https://hooks.example/x', ARRAY['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], (4294967296 * 3)::text::xid8, 1)
                """)
            let stalled = try await app.request(.get, "/v1/events", key: try await app.keySecret(.dashboard))
            try expectProblem(stalled, .serviceUnavailable, "feed-stalled")
            #expect((try stalled.json["detail"] as? String)?.contains("pg_resetwal -e 4") == true, "\(stalled.text)")
        }
    }

    @Test("a pool busy with work is still ready while the database answers that work; a pool stuck for longer is not")
    func readyUnderLoad() async throws {
        try await TestApp.run(configure: { $0.databasePoolSize = 4; $0.http.readinessTimeout = .seconds(1) }) { app in
            // A loaded machine may take longer than the probe's second for the first connections.
            #expect(try await ChildProcess.eventually(timeout: .seconds(60)) { try await app.request(.get, "/health/ready").status == .ok })
            let lastAnswer = ContinuousClock.now
            // Every connection taken, as by long requests at a load peak.
            let release = Gate()
            let holders = (0..<4).map { _ in
                Task { try await app.database.withConnection { _ in while !release.isOpen { try await Task.sleep(for: .milliseconds(20)) } } }
            }
            defer { release.open() }
            #expect(try await ChildProcess.eventually(timeout: .seconds(60)) { app.database.client.leasedNow.load(ordering: .relaxed) == 4 })
            // Before, this was 503 "not reachable", and a load balancer took every busy instance out at once.
            let busy = try await app.request(.get, "/health/ready")
            // (Only a loaded machine takes five seconds to get here: then nothing has answered lately.)
            if ContinuousClock.now - lastAnswer < .seconds(4) { #expect(busy.status == .ok, "\(busy.text)") }
            // Nothing has finished for longer than that: no longer evidence that the database answers.
            try await Task.sleep(for: .seconds(6))
            #expect(try await app.request(.get, "/health/ready").status == .serviceUnavailable)
            release.open()
            for holder in holders { try await holder.value }
            // Ready again once the pool answers: on a loaded machine the first probe after the release
            // may itself take longer than the one-second readiness timeout set above.
            #expect(try await ChildProcess.eventually(timeout: .seconds(60)) { try await app.request(.get, "/health/ready").status == .ok })
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
