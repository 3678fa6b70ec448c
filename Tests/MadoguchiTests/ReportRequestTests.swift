import Foundation
import Testing
@testable import Madoguchi

@Suite("Report requests")
struct ReportRequestTests {
    static func periods(_ from: String, _ to: String, _ granularity: ReportRequest.Granularity) -> String? {
        do {
            _ = try ReportRequest(from: from, to: to, granularity: granularity, timeZone: nil, filters: .init())
            return nil
        } catch let problem as Problem {
            return problem.detail
        } catch {
            return "\(error)"
        }
    }

    @Test("the periods a range touches are counted as the report makes them: months by the calendar, weeks from Monday")
    func periodLimit() {
        // 767 years by month are 9,204 months: within the limit (it had been counted as 10,007 by 28-day months).
        #expect(Self.periods("2000-01-01", "2766-12-31", .month) == nil)
        // 834 years are 10,008 months: refused, with the right count.
        #expect(Self.periods("2000-01-01", "2833-12-31", .month)?.contains("is 10008 periods; at most 10000") == true)
        // One day, one month; the 31st to the 1st, two.
        #expect(Self.periods("2026-01-31", "2026-02-01", .month) == nil)
        // 2026-12-07 is a Monday: 70,000 days from it are exactly 10,000 weeks; one day more touches another.
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        func day(_ offset: Int) -> String {
            let date = utc.date(byAdding: .day, value: offset, to: utc.date(from: DateComponents(year: 2026, month: 12, day: 7))!)!
            return date.formatted(.iso8601.year().month().day())
        }
        #expect(Self.periods("2026-12-07", day(69_999), .week) == nil)
        #expect(Self.periods("2026-12-07", day(70_000), .week)?.contains("is 10001 periods") == true)
        // From a Sunday, the first week is that one day: one more week than from the Monday after.
        #expect(Self.periods("2026-12-06", day(69_999), .week)?.contains("is 10001 periods") == true)
        #expect(Self.periods("2026-01-01", "2027-02-22", .hour)?.contains("is 10032 periods") == true)
    }
}
