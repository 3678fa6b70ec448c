import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

/// The claim statement on its own: how many rows it takes, which ones, and what it reads with them.
@Suite("Outbox claims")
struct OutboxClaimTests {
    @Test("a claim takes at most its limit, abandoned rows first, each with what its reply is written from")
    func claimLimitsAndSources() async throws {
        try await TestApp.run(configure: DeliveryWorkerTests.noWorkerInServe) { app in
            var replies: [String] = []
            for index in 0..<5 {
                let conversation = try await DeliveryTests.customerWrites(app, from: "claim\(index)@example.jp")
                replies.append(try await DeliveryTests.answer(conversation, "ご返信 \(index)"))
            }
            let store = OutboxStore(logger: TestCluster.logger)
            func claim(_ limit: Int) async throws -> [OutboxItem] {
                try await app.database.withConnection { connection in
                    try await store.claim(worker: "test", channels: [.email], lease: .seconds(60), limit: limit, maxAttempts: 12, on: connection)
                }
            }
            let first = try await claim(2)
            #expect(first.count == 2)
            #expect(try await app.count("SELECT count(*) FROM outbox WHERE state = 'sending'") == 2)
            for item in first {
                let source = try #require(item.source)
                #expect(source.body.hasPrefix("ご返信 "))
                #expect(source.parentID?.hasPrefix("c-") == true, "threaded to the customer's mail: \(String(describing: source.parentID))")
                #expect(source.ticketNumber > 0 && !source.hasAttachments && !source.automatic)
                #expect(item.attempts == 1)
            }

            // A claimed row whose lease ran out before its handover is taken again, before queued ones.
            let lapsed = first[0].id
            try await app.database.withConnection { connection in
                try await connection.query("UPDATE outbox SET lease_expires_at = now() - interval '1 second' WHERE id = \(lapsed)", logger: TestCluster.logger)
            }
            let second = try await claim(2)
            #expect(second.map(\.id).first == lapsed)
            #expect(second.first?.attempts == 2)
            #expect(second.count == 2)

            let rest = try await claim(10)
            #expect(rest.count == 2)
            #expect(try await claim(10).isEmpty)
            #expect(Set((first + second + rest).map(\.replyID)).count == 5)
            #expect(try await app.count("SELECT count(*) FROM outbox WHERE state = 'sending'") == 5)
        }
    }

    @Test("""
        a row that lapsed with its attempts spent is held for a person, not claimed again: a push whose result could never be \
        written down was otherwise sent at every lease, for ever
        """)
    func lapsedWithAttemptsSpent() async throws {
        try await TestApp.run(configure: DeliveryWorkerTests.noWorkerInServe) { app in
            var replies: [String] = []
            for index in 0..<2 {
                let conversation = try await DeliveryTests.customerWrites(app, from: "spent\(index)@example.jp")
                replies.append(try await DeliveryTests.answer(conversation, "ご返信 \(index)"))
            }
            let store = OutboxStore(logger: TestCluster.logger)
            // Both lapsed before any handover: one with its four attempts spent, one with a try left.
            try await app.execute("""
                UPDATE outbox SET state = 'sending', claimed_by = 'gone', lease_expires_at = now() - interval '1 second',
                                  attempts = CASE WHEN reply_id = \(replies[0])::uuid THEN 4 ELSE 3 END
                """)
            let claimed = try await app.database.withConnection {
                try await store.claim(worker: "test", channels: [.email], lease: .seconds(60), limit: 8, maxAttempts: 4, on: $0)
            }
            #expect(claimed.map(\.replyID.lowercased) == [replies[1]], "the row with a try left is claimed again, the spent one is not")
            let held = try await app.database.withTransaction {
                try await store.holdAbandonedHandovers(maxAttempts: 4, on: $0)
            }
            #expect(held.map(\.replyID.lowercased) == [replies[0]])
            // Mail marks its handover: without the mark, the reason says it was not sent.
            #expect(held.first?.reason.contains("no attempt reached the handover before its worker stopped (4 attempts): it was not sent") == true, "\(held)")
            #expect(try await app.strings("SELECT state::text FROM outbox WHERE reply_id = \(replies[0])::uuid") == ["held"])
        }
    }
}
