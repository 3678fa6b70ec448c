import Foundation
import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("API keys and roles", .timeLimit(.minutes(15)))
struct AuthenticationTests {
    /// Every /v1 operation, with a request that would succeed for an allowed role.
    static let operations: [(id: String, method: HTTPRequest.Method, path: String, json: String?)] = [
        ("getCurrentPrincipal", .get, "/v1/me", nil),
        ("listApiKeys", .get, "/v1/api-keys", nil),
        ("createApiKey", .post, "/v1/api-keys", #"{"name":"n","role":"dashboard"}"#),
        ("revokeApiKey", .delete, "/v1/api-keys/00000000-0000-4000-8000-000000000000", nil),
        ("ingestEmail", .post, "/v1/inbound/email", nil),
        ("ingestSms", .post, "/v1/inbound/sms", #"{"provider":"p","provider_message_id":"m","from":"09012345678","body":"b"}"#),
        ("ingestChat", .post, "/v1/inbound/chat", #"{"provider":"p","conversation_id":"c","provider_message_id":"m","sender":{"provider_user_id":"u"},"text":"t"}"#),
        ("ingestWebform", .post, "/v1/inbound/webform", #"{"form_id":"f","submission_id":"s","body":"b"}"#),
        ("getInboundPayload", .get, "/v1/inbound/00000000-0000-4000-8000-000000000000", nil),
        ("reprocessInboundPayload", .post, "/v1/inbound/00000000-0000-4000-8000-000000000000/reprocess", nil),
        ("getCustomer", .get, "/v1/customers/00000000-0000-4000-8000-000000000000", nil),
        ("findCustomers", .get, "/v1/customers?email=a@example.jp", nil),
        ("createCustomer", .post, "/v1/customers", #"{"display_name":"n"}"#),
        ("updateCustomer", .patch, "/v1/customers/00000000-0000-4000-8000-000000000000", #"{"is_vip":true}"#),
        ("addCustomerIdentity", .post, "/v1/customers/00000000-0000-4000-8000-000000000000/identities", #"{"kind":"external","value":"C-1"}"#),
        ("mergeCustomer", .post, "/v1/customers/00000000-0000-4000-8000-000000000000/merge", #"{"customer_id":"00000000-0000-4000-8000-000000000001"}"#),
        ("getCustomerTimeline", .get, "/v1/customers/00000000-0000-4000-8000-000000000000/timeline", nil),
        ("listTickets", .get, "/v1/tickets", nil),
        ("getTicket", .get, "/v1/tickets/00000000-0000-4000-8000-000000000000", nil),
        ("listTicketMessages", .get, "/v1/tickets/00000000-0000-4000-8000-000000000000/messages", nil),
        ("listTicketReplies", .get, "/v1/tickets/00000000-0000-4000-8000-000000000000/replies", nil),
        ("listReplies", .get, "/v1/replies", nil),
        ("getAttachment", .get, "/v1/attachments/00000000-0000-4000-8000-000000000000", nil),
        ("mergeTicket", .post, "/v1/tickets/00000000-0000-4000-8000-000000000000/merge", #"{"into_ticket_id":"00000000-0000-4000-8000-000000000001"}"#),
        ("updateTicket", .patch, "/v1/tickets/00000000-0000-4000-8000-000000000000", #"{"status":"open"}"#),
        ("claimTicket", .post, "/v1/tickets/00000000-0000-4000-8000-000000000000/claim", nil),
        ("releaseClaim", .delete, "/v1/tickets/00000000-0000-4000-8000-000000000000/claim", nil),
        ("claimNextTicket", .post, "/v1/queue/next", nil),
        ("addNote", .post, "/v1/tickets/00000000-0000-4000-8000-000000000000/notes", #"{"body":"x"}"#),
        ("createReply", .post, "/v1/tickets/00000000-0000-4000-8000-000000000000/replies", #"{"body":"x"}"#),
        ("getReply", .get, "/v1/replies/00000000-0000-4000-8000-000000000000", nil),
        ("getReplyAttachment", .get, "/v1/replies/00000000-0000-4000-8000-000000000000/attachments/00000000-0000-4000-8000-000000000000", nil),
        ("removeReplyAttachment", .delete, "/v1/replies/00000000-0000-4000-8000-000000000000/attachments/00000000-0000-4000-8000-000000000000", nil),
        ("updateReply", .patch, "/v1/replies/00000000-0000-4000-8000-000000000000", #"{"body":"x"}"#),
        ("sendReply", .post, "/v1/replies/00000000-0000-4000-8000-000000000000/send", "{}"),
        ("submitReply", .post, "/v1/replies/00000000-0000-4000-8000-000000000000/submit", "{}"),
        ("approveReply", .post, "/v1/replies/00000000-0000-4000-8000-000000000000/approve", "{}"),
        ("returnReply", .post, "/v1/replies/00000000-0000-4000-8000-000000000000/return", #"{"comment":"x"}"#),
        ("addReplyAttachment", .post, "/v1/replies/00000000-0000-4000-8000-000000000000/attachments",
         #"{"filename":"a.txt","media_type":"text/plain","content_base64":"eA=="}"#),
        ("resolveReplyDelivery", .post, "/v1/replies/00000000-0000-4000-8000-000000000000/delivery", #"{"action":"resend"}"#),
        ("listEvents", .get, "/v1/events", nil),
        // A bad cursor ends the stream with 400 after the key is checked, so the probe never hangs.
        ("streamEvents", .get, "/v1/events/stream?after=not-a-cursor", nil),
        ("listWebhooks", .get, "/v1/webhooks", nil),
        ("createWebhook", .post, "/v1/webhooks", #"{"url":"ftp://example.jp/hook"}"#),
        ("getWebhook", .get, "/v1/webhooks/00000000-0000-4000-8000-000000000000", nil),
        ("updateWebhook", .patch, "/v1/webhooks/00000000-0000-4000-8000-000000000000", #"{"active":true}"#),
        ("deleteWebhook", .delete, "/v1/webhooks/00000000-0000-4000-8000-000000000000", nil),
        ("rotateWebhookSecret", .post, "/v1/webhooks/00000000-0000-4000-8000-000000000000/secrets", nil),
        ("listWebhookDeliveries", .get, "/v1/webhooks/00000000-0000-4000-8000-000000000000/deliveries", nil),
        ("redeliverWebhook", .post, "/v1/webhooks/00000000-0000-4000-8000-000000000000/deliveries/00000000-0000-4000-8000-000000000000/redeliver", nil),
        ("listTemplates", .get, "/v1/templates", nil),
        ("getTemplate", .get, "/v1/templates/00000000-0000-4000-8000-000000000000", nil),
        ("listTemplateVersions", .get, "/v1/templates/00000000-0000-4000-8000-000000000000/versions", nil),
        ("createTemplate", .post, "/v1/templates", #"{"name":"n","body":"b"}"#),
        ("updateTemplate", .put, "/v1/templates/00000000-0000-4000-8000-000000000000", #"{"name":"n","body":"b"}"#),
        ("deleteTemplate", .delete, "/v1/templates/00000000-0000-4000-8000-000000000000", nil),
        ("deleteReply", .delete, "/v1/replies/00000000-0000-4000-8000-000000000000", nil),
        ("listRules", .get, "/v1/rules", nil),
        ("createRule", .post, "/v1/rules", #"{"name":"r","priority":"high","vip_only":true}"#),
        ("updateRule", .put, "/v1/rules/00000000-0000-4000-8000-000000000000", #"{"name":"r","priority":"high","vip_only":true}"#),
        ("listAgents", .get, "/v1/agents", nil),
        ("createAgent", .post, "/v1/agents", #"{"display_name":" "}"#),
        ("getAgent", .get, "/v1/agents/00000000-0000-4000-8000-000000000000", nil),
        ("updateAgent", .patch, "/v1/agents/00000000-0000-4000-8000-000000000000", #"{"availability":"away"}"#),
        ("deactivateAgent", .delete, "/v1/agents/00000000-0000-4000-8000-000000000000", nil),
        ("getAgentWorkload", .get, "/v1/agents/00000000-0000-4000-8000-000000000000/workload", nil),
        ("listQueues", .get, "/v1/queues", nil),
        ("createQueue", .post, "/v1/queues", #"{"name":"Not A Name"}"#),
        ("getQueue", .get, "/v1/queues/nope", nil),
        ("updateQueue", .patch, "/v1/queues/nope", #"{"description":"x"}"#),
        ("deleteQueue", .delete, "/v1/queues/nope", nil),
        ("renderTemplate", .post, "/v1/templates/00000000-0000-4000-8000-000000000000/render", #"{"ticket_id":"00000000-0000-4000-8000-000000000000"}"#),
        ("listBusinessCalendars", .get, "/v1/business-calendars", nil),
        ("getBusinessCalendar", .get, "/v1/business-calendars/00000000-0000-4000-8000-000000000000", nil),
        ("createBusinessCalendar", .post, "/v1/business-calendars", #"{"name":" ","weekly_hours":[]}"#),
        ("replaceBusinessCalendar", .put, "/v1/business-calendars/00000000-0000-4000-8000-000000000000", #"{"name":" ","weekly_hours":[]}"#),
        ("deleteBusinessCalendar", .delete, "/v1/business-calendars/00000000-0000-4000-8000-000000000000", nil),
        ("getBusinessTime", .get, "/v1/business-calendars/00000000-0000-4000-8000-000000000000/business-time?from=2026-12-01T00:00:00Z", nil),
        ("listSlaPolicies", .get, "/v1/sla-policies", nil),
        ("getSlaPolicy", .get, "/v1/sla-policies/00000000-0000-4000-8000-000000000000", nil),
        ("createSlaPolicy", .post, "/v1/sla-policies", #"{"name":" ","calendar_id":"00000000-0000-4000-8000-000000000000","targets":[]}"#),
        ("replaceSlaPolicy", .put, "/v1/sla-policies/00000000-0000-4000-8000-000000000000",
         #"{"name":" ","calendar_id":"00000000-0000-4000-8000-000000000000","targets":[]}"#),
        ("deleteSlaPolicy", .delete, "/v1/sla-policies/00000000-0000-4000-8000-000000000000", nil),
        ("getVolumeReport", .get, "/v1/reports/volume?from=2026-12-01&to=2026-12-01", nil),
        ("getBacklogReport", .get, "/v1/reports/backlog?from=2026-12-01&to=2026-12-01", nil),
        ("getResponseTimesReport", .get, "/v1/reports/response-times?from=2026-12-01&to=2026-12-01", nil),
        ("getAgentsReport", .get, "/v1/reports/agents?from=2026-12-01&to=2026-12-01", nil),
        ("getSlaReport", .get, "/v1/reports/sla?from=2026-12-01&to=2026-12-01", nil),
        ("getSlaBreachesReport", .get, "/v1/reports/sla-breaches?from=2026-12-01&to=2026-12-01", nil),
        ("getCategoriesReport", .get, "/v1/reports/categories?from=2026-12-01&to=2026-12-01", nil),
    ]

    @Test("the list above covers every protected operation in the access table")
    func coversEveryOperation() {
        #expect(Set(Self.operations.map(\.id)) == Set(OperationAccess.roles.keys))
    }

    @Test("every /v1 operation refuses a missing, malformed, unknown and revoked key with 401")
    func unauthenticated() async throws {
        try await TestApp.run { app in
            let (revoked, record) = try await app.key(.admin)
            try await app.execute("UPDATE api_keys SET revoked_at = now() WHERE id = \(record.id)")
            let unknown = APIKeySecret.generate().text
            for operation in Self.operations {
                let attempts: [(String, HTTPFields)] = [
                    ("no key", [:]),
                    ("basic auth", [.authorization: "Basic YWRtaW46YWRtaW4="]),
                    ("garbage", [.authorization: "Bearer not-a-key"]),
                    ("unknown", [.authorization: "Bearer \(unknown)"]),
                    ("revoked", [.authorization: "Bearer \(revoked)"]),
                ]
                for (label, headers) in attempts {
                    let response = try await app.request(operation.method, operation.path, headers: headers, json: operation.json)
                    #expect(response.status == .unauthorized, "\(operation.id) with \(label)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(operation.id) with \(label)")
                    #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer realm=\"madoguchi\"") == true)
                }
            }
        }
    }

    @Test("every /v1 operation refuses each role it does not list with 403, and admits the ones it does")
    func roles() async throws {
        try await TestApp.run { app in
            var keys: [Role: String] = [:]
            for role in Role.allCases { keys[role] = try await app.keySecret(role) }
            for operation in Self.operations {
                let allowed = OperationAccess.roles[operation.id] ?? []
                for role in Role.allCases {
                    let response = try await app.request(operation.method, operation.path, key: keys[role], json: operation.json)
                    if allowed.contains(role) {
                        #expect(![.unauthorized, .forbidden].contains(response.status), "\(operation.id) as \(role): \(response.text)")
                    } else {
                        #expect(response.status == .forbidden, "\(operation.id) as \(role)")
                        #expect(try response.json["type"] as? String == "https://madoguchi.dev/problems/forbidden")
                    }
                }
            }
        }
    }

    @Test("an admin creates a key over the API; it works at once, is listed without its secret, and stops working when revoked")
    func keyLifecycle() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let created = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"web form","role":"gateway"}"#)
            #expect(created.status == .created)
            let body = try created.json
            let secret = try #require(body["key"] as? String)
            let record = try #require(body["api_key"] as? [String: Any])
            let id = try #require(record["id"] as? String)
            #expect(id == id.lowercased())

            let me = try await app.request(.get, "/v1/me", key: secret)
            #expect(try me.json["role"] as? String == "gateway")
            #expect(try me.json["key_id"] as? String == id)

            let list = try await app.request(.get, "/v1/api-keys", key: admin)
            #expect(!list.text.contains(secret))
            #expect(list.text.contains(id))

            let stored = try await app.database.withConnection { connection in
                let rows = try await connection.query("SELECT count(*) FROM api_keys WHERE secret_hash = sha256(convert_to(\(secret), 'UTF8'))", logger: TestCluster.logger)
                for try await count in rows.decode(Int.self) { return count }
                return 0
            }
            #expect(stored == 1, "only the SHA-256 of the key is stored")

            #expect(try await app.request(.delete, "/v1/api-keys/\(id)", key: admin).status == .ok)
            #expect(try await app.request(.get, "/v1/me", key: secret).status == .unauthorized)
            // Revoking again is harmless; an unknown id is 404.
            #expect(try await app.request(.delete, "/v1/api-keys/\(id)", key: admin).status == .ok)
            #expect(try await app.request(.delete, "/v1/api-keys/\(UUID().uuidString)", key: admin).status == .notFound)
        }
    }

    @Test("a key revoked by another process (the CLI, another server) stops working within a second")
    func revokedElsewhere() async throws {
        try await TestApp.run { app in
            let (secret, record) = try await app.key(.gateway)
            #expect(try await app.request(.get, "/v1/me", key: secret).status == .ok)
            // What `madoguchi keys revoke` does: the row only, this server is not told.
            try await app.execute("UPDATE api_keys SET revoked_at = now() WHERE id = \(record.id)")
            try await Task.sleep(for: .milliseconds(1_100))
            #expect(try await app.request(.get, "/v1/me", key: secret).status == .unauthorized)
        }
    }

    @Test("an agent key acts for an agent; other roles cannot name one")
    func agentKeys() async throws {
        try await TestApp.run { app in
            let admin = try await app.keySecret(.admin)
            let agent = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"佐藤","role":"agent"}"#)
            let agentID = try #require((try agent.json["api_key"] as? [String: Any])?["agent_id"] as? String)
            // The agent the key made joined the team as one added through /v1/agents does; a second key adds no agent.
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'agent.created' AND data->>'agent_id' = \(agentID)") == 1)
            let second = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"佐藤 (laptop)","role":"supervisor","agent_id":"\#(agentID)"}"#)
            #expect(second.status == .created)
            let gateway = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"gw","role":"gateway","agent_id":"\#(agentID)"}"#)
            #expect(gateway.status == .unprocessableContent)
            let missing = try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"x","role":"agent","agent_id":"\#(UUID().uuidString)"}"#)
            #expect(missing.status == .unprocessableContent)
            #expect((try missing.json["errors"] as? [[String: String]])?.first?["pointer"] == "/agent_id")
            // Nothing half-written: the refused keys left no rows.
            let keys = try await app.request(.get, "/v1/api-keys", key: admin)
            #expect((try keys.json["items"] as? [Any])?.count == 3)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'agent.created'") == 1)
        }
    }
}

extension AuthenticationTests {
    @Test("over its rate a key gets 429 with Retry-After and RateLimit headers; other keys go on")
    func rateLimits() async throws {
        // One token per 1,000 s: however slowly a loaded machine runs the test, the bucket does not refill.
        try await TestApp.run(configure: { $0.http.rateLimits = [.agent: RateLimit(perSecond: 0.001, burst: 3)] }) { app in
            let (first, second) = (try await app.keySecret(.agent), try await app.keySecret(.agent))
            var remaining: [String?] = []
            for _ in 0..<3 {
                let allowed = try await app.request(.get, "/v1/me", key: first)
                #expect(allowed.status == .ok)
                remaining.append(allowed.headers[HTTPField.Name("RateLimit-Remaining")!])
            }
            #expect(remaining == ["2", "1", "0"])
            let refused = try await app.request(.get, "/v1/me", key: first)
            try expectProblem(refused, .tooManyRequests, "rate-limited")
            // 1,000 s for a whole token, less what trickled in while a loaded machine ran the requests.
            #expect((900...1000).contains(Int(refused.headers[.retryAfter] ?? "") ?? 0), "\(refused.headers)")
            #expect(refused.headers[HTTPField.Name("RateLimit-Limit")!] == "3")
            #expect(try await app.request(.get, "/v1/me", key: second).status == .ok)
            // An answer that is an error still says where the key stands.
            let missing = try await app.request(.get, "/v1/tickets/\(UUID())", key: second)
            #expect(missing.status == .notFound)
            #expect(missing.headers[HTTPField.Name("RateLimit-Remaining")!] == "1", "\(missing.headers)")
            // Gateways are unlimited in this configuration.
            let gateway = try await app.keySecret(.gateway)
            for _ in 0..<5 { #expect(try await app.request(.get, "/v1/me", key: gateway).status == .ok) }
        }
    }

    @Test("wrong keys are limited per client address: over the allowance, unknown keys are refused without a lookup; cached valid keys still pass")
    func wrongKeyRateLimit() async throws {
        try await TestApp.run(configure: { $0.http.wrongKeyRateLimit = RateLimit(perSecond: 0.001, burst: 3) }) { app in
            let valid = try await app.keySecret(.agent)
            let gateway = try await app.key(.gateway)
            // Found valid once: cached for a second from here (APIKeyCache.lifetime).
            #expect(try await app.request(.get, "/v1/me", key: valid).status == .ok)
            let cachedUntil = ContinuousClock.now + APIKeyCache.lifetime
            for _ in 0..<3 {
                try expectProblem(try await app.request(.get, "/v1/me", key: APIKeySecret.generate().text), .unauthorized, "unauthenticated")
            }
            let cachedAnswer = try await app.request(.get, "/v1/me", key: valid).status
            // Only a loaded machine takes a second over four requests; then the key has left the cache.
            if ContinuousClock.now < cachedUntil { #expect(cachedAnswer == .ok, "a key found valid a moment ago is cached, and passes") }
            // Even a key that would be valid is not looked up now: every lookup could be a guess.
            let refused = try await app.request(.get, "/v1/me", key: gateway.secret)
            try expectProblem(refused, .tooManyRequests, "rate-limited")
            #expect((900...1000).contains(Int(refused.headers[.retryAfter] ?? "") ?? 0), "\(refused.headers)")
            #expect(try await Self.lastUsed(gateway.record.id, app) == nil, "refused without a lookup (a lookup marks the key used)")
        }
    }

    static func lastUsed(_ key: UUID, _ app: TestApp) async throws -> Date? {
        try await app.database.withConnection { connection in
            try await connection.query("SELECT last_used_at FROM api_keys WHERE id = \(key)", logger: TestCluster.logger).collect().first?.decode(Date?.self)
        }
    }

    @Test("provider webhooks carry no key: their limit is per client address, answered before the signature is looked at")
    func providerWebhookRateLimit() async throws {
        try await TestApp.run(configure: { $0.http.providerRateLimit = RateLimit(perSecond: 0.001, burst: 2) }) { app in
            let json: HTTPFields = [.contentType: "application/json"]
            for _ in 0..<2 {
                // No signature: refused unread, but it still used a token.
                let unsigned = try await app.request(.post, "/v1/inbound/chat/line", headers: json, json: #"{"events":[]}"#)
                #expect(unsigned.status == .forbidden, "\(unsigned.text)")
            }
            let refused = try await app.request(.post, "/v1/inbound/chat/line", headers: json, json: #"{"events":[]}"#)
            try expectProblem(refused, .tooManyRequests, "rate-limited")
            #expect((900...1000).contains(Int(refused.headers[.retryAfter] ?? "") ?? 0), "\(refused.headers)")
            // Keyed operations keep their own (here unlimited) buckets.
            #expect(try await app.request(.get, "/v1/me", key: try await app.keySecret(.gateway)).status == .ok)
        }
    }
}
