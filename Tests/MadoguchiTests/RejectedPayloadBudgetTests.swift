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

    @Test("drops not yet reported when a window ends are reported in the next one")
    func dropsCarryOver() {
        let budget = RejectedPayloadBudget()
        let start = ContinuousClock.now
        _ = (0..<(RejectedPayloadBudget.perWindow + 1)).map { _ in budget.mayKeep(now: start) }
        #expect(budget.droppedToReport(now: start) == 1)
        // Five more dropped within the minute: not reported yet when the window ends.
        for _ in 0..<5 { _ = budget.mayKeep(now: start + .seconds(20)) }
        #expect(budget.mayKeep(now: start + RejectedPayloadBudget.window))
        #expect(budget.droppedToReport(now: start + RejectedPayloadBudget.window) == 5)
    }
}
