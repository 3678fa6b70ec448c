import Testing
@testable import Madoguchi

@Suite("Feed horizon")
struct FeedHorizonTests {
    @Test("a running transaction's 32-bit id widens to the 64-bit id at or below the next one, across an epoch")
    func widening() {
        #expect(EventFeed.fullTransactionID(750, near: 800) == 750)
        #expect(EventFeed.fullTransactionID(800, near: 800) == 800)
        // The counter wrapped: the next id is early in epoch 3, the running one late in epoch 2.
        let next: UInt64 = 3 << 32 | 10
        #expect(EventFeed.fullTransactionID(0xFFFF_FFF0, near: next) == 2 << 32 | 0xFFFF_FFF0)
        #expect(EventFeed.fullTransactionID(5, near: next) == 3 << 32 | 5)
    }
}
