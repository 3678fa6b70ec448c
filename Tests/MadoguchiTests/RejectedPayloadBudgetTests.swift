import Testing
@testable import Madoguchi

@Suite("The budget of refused webhook requests kept")
struct RejectedPayloadBudgetTests {
    @Test("keeps its allowance each window, counts what it drops, reports that at most once a minute")
    func allowance() {
        let budget = RejectedPayloadBudget()
        let start = ContinuousClock.now
        let kept = (0..<(RejectedPayloadBudget.perWindow + 20)).filter { _ in budget.mayKeep(now: start) }.count
        #expect(kept == RejectedPayloadBudget.perWindow)
        #expect(budget.droppedToReport(now: start) == 20)
        #expect(!budget.mayKeep(now: start + .seconds(30)))
        #expect(budget.droppedToReport(now: start + .seconds(30)) == nil, "reported a minute ago")
        #expect(budget.droppedToReport(now: start + .seconds(61)) == 1)
        #expect(budget.mayKeep(now: start + RejectedPayloadBudget.window), "a new window")
    }
}
