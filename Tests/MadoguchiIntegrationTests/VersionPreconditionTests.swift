import Foundation
import Synchronization
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite("Supervisors' edits with If-Match: a change made since the read is 412, never overwritten", .timeLimit(.minutes(10)))
struct VersionPreconditionTests {
    /// One kind of resource: where it is made, where it lives, and two different edits of it.
    struct Resource: CustomStringConvertible {
        let description: String
        let collection: String
        let create: String
        /// The member's path segment: its id, or a queue's name.
        let key: String
        let method: HTTPRequest.Method
        let firstEdit: String
        let secondEdit: String
        /// The member that each edit sets, and to what.
        let field: String
        let firstValue: String
        let secondValue: String
    }

    static let resources: [Resource] = [
        Resource(description: "business calendar", collection: "/v1/business-calendars", create: #"{"name":"本店","weekly_hours":[]}"#, key: "id",
                 method: .put, firstEdit: #"{"name":"本店 年末年始","weekly_hours":[]}"#, secondEdit: #"{"name":"本店 臨時休業","weekly_hours":[]}"#,
                 field: "name", firstValue: "本店 年末年始", secondValue: "本店 臨時休業"),
        Resource(description: "template", collection: "/v1/templates", create: #"{"name":"発送","body":"発送しました。"}"#, key: "id",
                 method: .put, firstEdit: #"{"name":"発送","body":"本日発送しました。"}"#, secondEdit: #"{"name":"発送","body":"明日発送します。"}"#,
                 field: "body", firstValue: "本日発送しました。", secondValue: "明日発送します。"),
        Resource(description: "agent", collection: "/v1/agents", create: #"{"display_name":"佐藤"}"#, key: "id",
                 method: .patch, firstEdit: #"{"display_name":"佐藤 一郎"}"#, secondEdit: #"{"display_name":"佐藤 次郎"}"#,
                 field: "display_name", firstValue: "佐藤 一郎", secondValue: "佐藤 次郎"),
        Resource(description: "queue", collection: "/v1/queues", create: #"{"name":"returns"}"#, key: "name",
                 method: .patch, firstEdit: #"{"description":"返品"}"#, secondEdit: #"{"description":"交換"}"#,
                 field: "description", firstValue: "返品", secondValue: "交換"),
    ]

    @Test("ETag on every read and write; a stale tag is 412 and changes nothing, the current one or none goes through, a malformed one is 400",
          arguments: resources)
    func staleEdit(_ resource: Resource) async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let created = try await app.request(.post, resource.collection, key: supervisor, json: resource.create)
            #expect(created.status == .created, "\(created.text)")
            #expect(created.headers[.eTag] == "\"1\"")
            let member = "\(resource.collection)/\(try #require(try created.json[resource.key] as? String))"

            // Two supervisors read version 1; the first saves, the second saves over what it read.
            let read = try await app.request(.get, member, key: supervisor)
            let tag = try #require(read.headers[.eTag])
            #expect(tag == "\"\(try #require(try read.json["version"] as? Int))\"")
            let first = try await app.request(resource.method, member, key: supervisor, headers: [.ifMatch: tag], json: resource.firstEdit)
            #expect(first.status == .ok, "\(first.text)")
            #expect(first.headers[.eTag] == "\"2\"")
            try expectProblem(try await app.request(resource.method, member, key: supervisor, headers: [.ifMatch: tag], json: resource.secondEdit),
                              .preconditionFailed, "precondition-failed")
            #expect(try await app.request(.get, member, key: supervisor).json[resource.field] as? String == resource.firstValue)

            try expectProblem(try await app.request(resource.method, member, key: supervisor, headers: [.ifMatch: "2"], json: resource.secondEdit),
                              .badRequest, "invalid-parameter")
            // A weak tag never matches a write; a list matches when one of its tags does.
            try expectProblem(try await app.request(resource.method, member, key: supervisor, headers: [.ifMatch: "W/\"2\""], json: resource.secondEdit),
                              .preconditionFailed, "precondition-failed")
            let listed = try await app.request(resource.method, member, key: supervisor, headers: [.ifMatch: "\"1\", \"2\""], json: resource.secondEdit)
            #expect(listed.status == .ok, "\(listed.text)")
            #expect(try listed.json[resource.field] as? String == resource.secondValue)
            // Without If-Match the last write wins, as it always did.
            #expect(try await app.request(resource.method, member, key: supervisor, json: resource.firstEdit).headers[.eTag] == "\"4\"")
        }
    }

    @Test("a rule replaced from a stale read is 412 and keeps the other supervisor's keywords; without If-Match the last write wins")
    func staleRule() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let created = try await app.request(.post, "/v1/rules", key: supervisor, json: #"{"name":"返金","priority":"high","keywords":["返金"]}"#)
            #expect(created.status == .created, "\(created.text)")
            #expect(created.headers[.eTag] == "\"1\"")
            let id = try #require(try created.json["id"] as? String)
            func listed() async throws -> [String: Any]? {
                ((try await app.request(.get, "/v1/rules", key: supervisor).json["items"] as? [[String: Any]]) ?? []).first { $0["id"] as? String == id }
            }
            #expect(try await listed()?["version"] as? Int == 1)
            // A adds a keyword; B, from the same read, raises the priority and would drop it.
            let added = try await app.request(.put, "/v1/rules/\(id)", key: supervisor, headers: [.ifMatch: "\"1\""],
                                              json: #"{"name":"返金","priority":"high","keywords":["返金","返品"]}"#)
            #expect(added.status == .ok, "\(added.text)")
            #expect(added.headers[.eTag] == "\"2\"")
            let raised = #"{"name":"返金","priority":"urgent","keywords":["返金"]}"#
            try expectProblem(try await app.request(.put, "/v1/rules/\(id)", key: supervisor, headers: [.ifMatch: "\"1\""], json: raised),
                              .preconditionFailed, "precondition-failed")
            #expect(try await listed()?["keywords"] as? [String] == ["返金", "返品"])
            #expect(try await app.request(.put, "/v1/rules/\(id)", key: supervisor, json: raised).headers[.eTag] == "\"3\"")
        }
    }

    @Test("an If-Match edit of a queue does not wait for a ticket being filed into it (its lock lets foreign-key checks through)")
    func noWaitOnReferences() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let created = try await app.request(.post, "/v1/queues", key: supervisor, json: #"{"name":"returns"}"#)
            let tag = try #require(created.headers[.eTag])
            let customer = try await app.customer()
            final class Flag: Sendable { let raised = Mutex(false) }
            let holderDone = Flag()
            let database = app.database
            let (inserted, insertedSignal) = AsyncStream<Void>.makeStream()
            let (finish, finishSignal) = AsyncStream<Void>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                // A ticket filed into the queue, its transaction still open: it holds the queue's row
                // FOR KEY SHARE. It gives up after a minute, so a blocked edit ends the test, not hangs it.
                group.addTask {
                    try await database.withTransaction { connection in
                        try await connection.perform("""
                            INSERT INTO tickets (customer_id, subject, status, channel, queue) VALUES (\(customer), '返品', 'new', 'email', 'returns')
                            """, logger: TestCluster.logger)
                        insertedSignal.yield()
                        await withTaskGroup(of: Void.self) { wait in
                            wait.addTask { for await _ in finish { break } }
                            wait.addTask { try? await Task.sleep(for: .seconds(60)) }
                            await wait.next()
                            wait.cancelAll()
                        }
                    }
                    holderDone.raised.withLock { $0 = true }
                }
                for await _ in inserted { break }
                let edited = try await app.request(.patch, "/v1/queues/returns", key: supervisor, headers: [.ifMatch: tag], json: #"{"description":"返品"}"#)
                #expect(!holderDone.raised.withLock { $0 }, "the edit waited for the other transaction to end")
                finishSignal.yield()
                #expect(edited.status == .ok, "\(edited.text)")
                try await group.waitForAll()
            }
        }
    }

    @Test("an SLA policy made the default with a stale tag is 412 and the default stays where it was")
    func stalePolicy() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let calendars = try await app.request(.get, "/v1/business-calendars", key: supervisor).json
            let calendar = try #require(((calendars["items"] as? [[String: Any]])?.first?["id"]) as? String)
            func policy(_ name: String, isDefault: Bool) -> String {
                #"{"name":"\#(name)","calendar_id":"\#(calendar)","is_default":\#(isDefault),"targets":[{"priority":"normal","first_response_minutes":60,"next_response_minutes":30,"resolution_minutes":480}]}"#
            }
            let created = try await app.request(.post, "/v1/sla-policies", key: supervisor, json: policy("急ぎ", isDefault: false))
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(try created.json["id"] as? String)
            let tag = try #require(created.headers[.eTag])
            #expect(try await app.request(.put, "/v1/sla-policies/\(id)", key: supervisor, headers: [.ifMatch: tag],
                                          json: policy("急ぎ(改)", isDefault: false)).status == .ok)
            try expectProblem(try await app.request(.put, "/v1/sla-policies/\(id)", key: supervisor, headers: [.ifMatch: tag],
                                                    json: policy("急ぎ", isDefault: true)), .preconditionFailed, "precondition-failed")
            let after = try await app.request(.get, "/v1/sla-policies/\(id)", key: supervisor)
            #expect(try after.json["is_default"] as? Bool == false)
            #expect(try after.json["name"] as? String == "急ぎ(改)")
            let made = try await app.request(.put, "/v1/sla-policies/\(id)", key: supervisor, headers: [.ifMatch: try #require(after.headers[.eTag])],
                                             json: policy("急ぎ", isDefault: true))
            #expect(made.status == .ok, "\(made.text)")
            #expect(try made.json["is_default"] as? Bool == true)
        }
    }
}
