import Foundation
import PostgresNIO

/// When the team works: a time zone, weekly hours (several on a day are a split shift), national
/// holidays it observes and its own closed days. SLA clocks and reports count only this time, through
/// the SQL functions of migration 0025 (`business_seconds`, `business_time_add`).
public struct BusinessCalendar: Sendable, Equatable {
    /// One opening on an ISO weekday (1 = Monday … 7 = Sunday), `HH:MM` in the calendar's zone.
    public struct Hours: Sendable, Equatable {
        public var weekday: Int
        public var opens: String
        public var closes: String
    }

    public struct ClosedDay: Sendable, Equatable {
        /// `YYYY-MM-DD`, a whole day in the calendar's zone.
        public var date: String
        public var name: String
    }

    public enum NationalHolidays: String, Sendable, CaseIterable {
        case jp, none
    }

    public var id: UUID
    public var name: String
    public var timeZone: String
    public var nationalHolidays: NationalHolidays
    public var hours: [Hours]
    public var closedDays: [ClosedDay]
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date

    /// Whether clocks count in it as they did in `before`: only names changed (the calendar's or a
    /// closed day's), or nothing did (a PUT sent again: tickets keep their versions, and agents their ETags).
    /// Hours and closed days compared as sets, so the order they are listed in is never a change.
    func movesNoClock(since before: BusinessCalendar) -> Bool {
        timeZone == before.timeZone && nationalHolidays == before.nationalHolidays
            && Set(hours.map { "\($0.weekday) \($0.opens) \($0.closes)" }) == Set(before.hours.map { "\($0.weekday) \($0.opens) \($0.closes)" })
            && Set(closedDays.map(\.date)) == Set(before.closedDays.map(\.date))
    }

    /// The calendar migration 0025 ships (標準: weekdays 9–18 Tokyo, holidays and 年末年始 closed).
    static let standardID = UUID(uuidString: "00000000-0000-4000-8000-0000000ca1e0")!

    static let columns = "id, name, time_zone, national_holidays, version, created_at, updated_at"

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        name = try row.value("name")
        timeZone = try row.value("time_zone")
        nationalHolidays = try Ticket.enumeration(row.value("national_holidays"))
        version = try row.value("version")
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
        hours = []
        closedDays = []
    }
}

/// What a supervisor writes: everything but the id, version and time stamps.
struct BusinessCalendarDraft: Sendable {
    var name: String
    var timeZone: String
    var nationalHolidays: BusinessCalendar.NationalHolidays
    var hours: [BusinessCalendar.Hours]
    var closedDays: [BusinessCalendar.ClosedDay]

    /// The checks the schema cannot express, each naming the field: openings that end before they
    /// start or overlap another on the same day, dates that do not exist, a day closed twice.
    func problems() -> [Problem.FieldError] {
        var errors: [Problem.FieldError] = []
        // The generated decoder checks neither patterns nor lengths; the schema's limits are kept here.
        if name.trimmed.isEmpty { errors.append(.init(pointer: "/name", message: "must not be blank")) }
        if name.count > 200 { errors.append(.init(pointer: "/name", message: "must be at most 200 characters")) }
        if hours.count > 100 { errors.append(.init(pointer: "/weekly_hours", message: "at most 100 openings")) }
        if closedDays.count > 3000 { errors.append(.init(pointer: "/closed_days", message: "at most 3000 closed days")) }
        for (index, hours) in hours.enumerated() {
            if !Self.isClockTime(hours.opens, allowingMidnight: false) {
                errors.append(.init(pointer: "/weekly_hours/\(index)/opens", message: "\(hours.opens) is not a time of day as HH:MM (00:00–23:59)"))
            } else if !Self.isClockTime(hours.closes, allowingMidnight: true) {
                errors.append(.init(pointer: "/weekly_hours/\(index)/closes", message: "\(hours.closes) is not a time of day as HH:MM (00:01–24:00)"))
            } else if Self.minutes(hours.opens) >= Self.minutes(hours.closes) {
                errors.append(.init(pointer: "/weekly_hours/\(index)", message: "closes (\(hours.closes)) must be after opens (\(hours.opens))"))
            }
        }
        for (index, day) in closedDays.enumerated() where day.name.count > 200 {
            errors.append(.init(pointer: "/closed_days/\(index)/name", message: "must be at most 200 characters"))
        }
        let byDay = Dictionary(grouping: hours.indices, by: { hours[$0].weekday })
        for indices in byDay.values {
            let sorted = indices.sorted { Self.minutes(hours[$0].opens) < Self.minutes(hours[$1].opens) }
            for (earlier, later) in zip(sorted, sorted.dropFirst()) where Self.minutes(hours[later].opens) < Self.minutes(hours[earlier].closes) {
                errors.append(.init(pointer: "/weekly_hours/\(later)",
                                    message: "overlaps \(hours[earlier].opens)–\(hours[earlier].closes) on the same day"))
            }
        }
        var seen: Set<String> = []
        for (index, day) in closedDays.enumerated() {
            if !Self.isCalendarDate(day.date) {
                errors.append(.init(pointer: "/closed_days/\(index)/date", message: "\(day.date) is not a date (YYYY-MM-DD)"))
            } else if !seen.insert(day.date).inserted {
                errors.append(.init(pointer: "/closed_days/\(index)/date", message: "\(day.date) is listed twice"))
            }
        }
        return errors
    }

    /// `HH:MM` on a 24-hour clock, two digits each; `24:00` (midnight at the end of the day) only
    /// when `allowingMidnight`.
    static func isClockTime(_ text: String, allowingMidnight: Bool) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let hour = Int(parts[0]), let minute = Int(parts[1]), minute < 60
        else { return false }
        return hour < 24 || (allowingMidnight && hour == 24 && minute == 0)
    }

    /// `HH:MM` as minutes after midnight (`24:00` is 1440); the schema's pattern has checked the form.
    static func minutes(_ time: String) -> Int {
        let parts = time.split(separator: ":").compactMap { Int($0) }
        return parts.count == 2 ? parts[0] * 60 + parts[1] : 0
    }

    /// A real day of the Gregorian calendar in `YYYY-MM-DD` form (not 2026-02-30).
    static func isCalendarDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        // Four, two and two digits: `26-01-0005` is ten characters too, and PostgreSQL then read it
        // as another day, or refused it with a 500.
        guard text.count == 10, parts.count == 3, parts.map(\.count) == [4, 2, 2],
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]), (1...9999).contains(year), (1...12).contains(month)
        else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)) else { return false }
        let back = calendar.dateComponents([.year, .month, .day], from: date)
        return back.year == year && back.month == month && back.day == day
    }
}
