import Foundation
import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("Browser dashboards on another origin (MADOGUCHI_CORS_ORIGINS)", .timeLimit(.minutes(5)))
struct CORSTests {
    static let dashboardOrigin = "https://dash.example.jp"

    @Test("an allowed origin's preflight is answered before any key is asked for; its answers, errors included, are readable; another origin's are not")
    func allowedOrigin() async throws {
        try await TestApp.run(configure: { $0.http.corsOrigins = try! CORSOrigins("https://dash.example.jp, http://localhost:3000") }) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let origin = HTTPField.Name("Origin")!
            let preflight = try await app.request(.options, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", headers: [
                origin: Self.dashboardOrigin, .accessControlRequestMethod: "GET", .accessControlRequestHeaders: "authorization",
            ])
            #expect(preflight.status == .noContent, "\(preflight.text)")
            #expect(preflight.headers[.accessControlAllowOrigin] == Self.dashboardOrigin)
            #expect(preflight.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("GET") == true)

            let report = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", key: dashboard, headers: [origin: Self.dashboardOrigin])
            #expect(report.status == .ok)
            #expect(report.headers[.accessControlAllowOrigin] == Self.dashboardOrigin)
            #expect(report.headers[.accessControlExposeHeaders]?.contains("X-Data-As-Of") == true)
            #expect(report.headers[.vary]?.contains("Origin") == true)
            // A problem is readable too: the page can show why.
            let refused = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", headers: [origin: Self.dashboardOrigin])
            try expectProblem(refused, .unauthorized, "unauthenticated")
            #expect(refused.headers[.accessControlAllowOrigin] == Self.dashboardOrigin)

            // Another origin: nothing that lets its page read the answer, and no preflight.
            let other = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", key: dashboard, headers: [origin: "https://evil.example"])
            #expect(other.status == .ok)
            #expect(other.headers[.accessControlAllowOrigin] == nil)
            let otherPreflight = try await app.request(.options, "/v1/reports/volume", headers: [origin: "https://evil.example", .accessControlRequestMethod: "GET"])
            #expect(otherPreflight.status != .noContent)
            #expect(otherPreflight.headers[.accessControlAllowOrigin] == nil)
        }
    }

    @Test("without the setting no answer carries CORS headers; the setting takes exact origins or *, and refuses a URL with a path")
    func setting() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let report = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", key: dashboard,
                                               headers: [HTTPField.Name("Origin")!: Self.dashboardOrigin])
            #expect(report.headers[.accessControlAllowOrigin] == nil)
        }
        #expect(try CORSOrigins("*") == .any)
        #expect(try CORSOrigins(" https://Dash.example.jp ,http://localhost:3000") == .only(["https://dash.example.jp", "http://localhost:3000"]))
        #expect(try CORSOrigins("https://dash.example.jp").allowing("https://DASH.example.jp") == "https://DASH.example.jp")
        #expect(throws: ConfigurationError.self) { try CORSOrigins("https://dash.example.jp/reports") }
        #expect(throws: ConfigurationError.self) { try CORSOrigins("dash.example.jp") }
    }
}
