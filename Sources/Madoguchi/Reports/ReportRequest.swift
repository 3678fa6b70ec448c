import Foundation

/// What every report is asked: a range of whole local days, how to cut it into periods, in which
/// time zone, and which tickets to count.
package struct ReportRequest: Sendable {
    package enum Granularity: String, Sendable, CaseIterable {
        case hour, day, week, month
    }

    package struct Filters: Sendable {
        var channel: Channel?
        var queue: String?
        var category: String?
        var tag: String?
        var agentID: UUID?
        var priority: Ticket.Priority?

        package init(channel: Channel? = nil, queue: String? = nil, category: String? = nil, tag: String? = nil, agentID: UUID? = nil,
                     priority: Ticket.Priority? = nil) {
            self.channel = channel
            self.queue = queue
            self.category = category
            self.tag = tag
            self.agentID = agentID
            self.priority = priority
        }
    }

    /// `YYYY-MM-DD`, the first local day counted.
    var from: String
    /// `YYYY-MM-DD`, the last local day counted (inclusive).
    var to: String
    var granularity: Granularity
    /// Asia/Tokyo when not given; the API puts the standard calendar's zone in its place
    /// (`ReportStore.defaultZone`).
    var timeZone: String
    var filters: Filters

    /// The most periods one report answers with: a year and a half of hours, 27 years of days.
    static let maximumPeriods = 10_000

    /// Checks what can be checked without the database (the zone is checked there), naming the
    /// parameter at fault.
    /// `periodic`: the report's rows are periods, which are then at most `maximumPeriods`; a report
    /// over the whole range (agents, categories) is not refused for a granularity it does not use.
    package init(from: String, to: String, granularity: Granularity?, timeZone: String?, filters: Filters, periodic: Bool = true) throws {
        guard let first = Self.day(from) else { throw Self.notADay("from", from) }
        guard let last = Self.day(to) else { throw Self.notADay("to", to) }
        guard first <= last else { throw Problem.invalidParameter("to", "\(to) is before from (\(from))") }
        // No ticket has an empty queue, category or tag ("" clears a category): an empty filter
        // answered all zeros, read as "nothing happened" rather than as a mistyped query.
        for (name, value) in [("queue", filters.queue), ("category", filters.category), ("tag", filters.tag)] where value?.isEmpty == true {
            throw Problem.invalidParameter(name, name == "category"
                ? "is empty; name a category, or (none) for the tickets without one" : "is empty; name one, or leave it out")
        }
        let granularity = granularity ?? .day
        let days = Int(last.timeIntervalSince(first) / 86400) + 1
        // The periods the range touches: weeks start on Monday, months on the 1st.
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let periods = switch granularity {
        case .hour: days * 24
        case .day: days
        case .week: ((utc.component(.weekday, from: first) + 5) % 7 + days + 6) / 7
        case .month: Self.monthNumber(last, utc) - Self.monthNumber(first, utc) + 1
        }
        guard periods <= Self.maximumPeriods || !periodic else {
            throw Problem.invalidParameter("granularity", "\(days) days by \(granularity.rawValue) is \(periods) periods; at most \(Self.maximumPeriods) — choose a coarser granularity or a shorter range")
        }
        self.from = from
        self.to = to
        self.granularity = granularity
        self.timeZone = timeZone ?? "Asia/Tokyo"
        self.filters = filters
    }

    /// What is wrong with a day that `day` refused: not a date, or one outside the years reports cover.
    private static func notADay(_ parameter: String, _ text: String) -> Problem {
        BusinessCalendarDraft.isCalendarDate(text)
            ? Problem.invalidParameter(parameter, "\(text) is outside the years 2000–2999 that reports cover")
            : Problem.invalidParameter(parameter, "\(text) is not a date (YYYY-MM-DD)")
    }

    /// Months since year 0: the difference of two is how many month boundaries lie between them.
    private static func monthNumber(_ day: Date, _ calendar: Calendar) -> Int {
        let parts = calendar.dateComponents([.year, .month], from: day)
        return parts.year! * 12 + parts.month!
    }

    /// A real Gregorian day written `YYYY-MM-DD` (years 2000–2999: reports are about this service's life).
    static func day(_ text: String) -> Date? {
        guard BusinessCalendarDraft.isCalendarDate(text), let year = Int(text.prefix(4)), (2000...2999).contains(year) else { return nil }
        return try? Date(text + "T00:00:00Z", strategy: .iso8601)
    }
}
