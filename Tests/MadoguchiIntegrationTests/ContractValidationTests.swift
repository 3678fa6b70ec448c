import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import Madoguchi

@Suite("What the contract forbids is refused over HTTP, before anything is written")
struct ContractValidationTests {
    static func refused(_ response: TestClient.Response, at pointers: [String]) throws {
        try expectProblem(response, .unprocessableContent, "validation-failed")
        #expect((try response.json["errors"] as? [[String: String]])?.compactMap { $0["pointer"] } == pointers, "\(response.text)")
    }

    @Test("an empty template, a 5,000-character category, a 600-character recipient, nulls for members that may not be null: each a 422 naming the member")
    func refusals() async throws {
        try await TestApp.run { app in
            let boss = try await app.keySecret(.supervisor)
            let admin = try await app.keySecret(.admin)
            try Self.refused(try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"空","body":""}"#), at: ["/body"])
            try Self.refused(
                try await app.request(.post, "/v1/rules", key: boss, json: #"{"name":"r","categories":["\#(String(repeating: "長", count: 5000))"],"priority":"high"}"#),
                at: ["/categories/0"])
            try Self.refused(try await app.request(.post, "/v1/api-keys", key: admin, json: #"{"name":"k","role":"gateway","agent_id":null}"#), at: ["/agent_id"])
            let customer = try await app.customer()
            try Self.refused(try await app.request(.patch, "/v1/customers/\(customer)", key: boss, json: #"{"display_name":null}"#), at: ["/display_name"])
            let scene = try await ReplyTests.scene(app)
            try Self.refused(
                try await app.request(.post, "/v1/tickets/\(scene.ticket)/notes", key: scene.agent.secret, json: #"{"body":"確認","mentions":null}"#),
                at: ["/mentions"])
            let long = String(repeating: "a", count: 600) + "@example.jp"
            try Self.refused(
                try await app.request(.post, "/v1/tickets/\(scene.ticket)/replies", key: scene.agent.secret,
                                      json: #"{"body":"山田 花子 様","recipients":["\#(long)"],"subject":"\#(String(repeating: "件", count: 2001))"}"#),
                at: ["/recipients/0", "/subject"])
            #expect(try await app.count("SELECT (SELECT count(*) FROM templates) + (SELECT count(*) FROM rules) + (SELECT count(*) FROM replies)") == 0)
            #expect(try await app.count("SELECT count(*) FROM api_keys WHERE name = 'k'") == 0)
            // Wrong types are still the decoder's 400, naming the member.
            let wrongType = try await app.request(.post, "/v1/templates", key: boss, json: #"{"name":"t","body":12}"#)
            #expect(wrongType.status == .badRequest, "\(wrongType.text)")
        }
    }
}
