import Foundation
import Logging
import PostgresNIO

/// The SQL behind business calendars (`business_calendars`, `business_hours`, `business_closed_days`)
/// and the one way Swift asks how much business time lies between two instants.
struct CalendarStore: Sendable {
    let logger: Logger

    func list(on connection: PostgresConnection) async throws -> [BusinessCalendar] {
        let rows = try await connection.run(
            "SELECT \(unescaped: BusinessCalendar.columns) FROM business_calendars ORDER BY name, id", logger: logger)
        var calendars: [BusinessCalendar] = []
        for try await row in rows { calendars.append(try BusinessCalendar(row: row)) }
        return try await withDays(calendars, on: connection)
    }

    /// The version, its row locked until the caller's transaction ends (for `If-Match`); nil if none.
    /// FOR NO KEY UPDATE, as the write itself takes: the foreign-key checks of rows that refer to it
    /// (tickets, claims, events) do not wait on it.
    func lockedVersion(id: UUID, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version FROM business_calendars WHERE id = \(id) FOR NO KEY UPDATE", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return nil
    }

    func calendar(id: UUID, on connection: PostgresConnection) async throws -> BusinessCalendar {
        let rows = try await connection.run(
            "SELECT \(unescaped: BusinessCalendar.columns) FROM business_calendars WHERE id = \(id)", logger: logger)
        for try await row in rows { return try await withDays([try BusinessCalendar(row: row)], on: connection)[0] }
        throw Self.notFound(id)
    }

    /// Creates (id nil) or replaces a calendar, hours and closed days included; in the caller's
    /// transaction. An unknown time zone is a 422 naming it. (Replaced, its tickets' clocks are set
    /// again, asked for by the caller: `SLAPolicyStore.requestClockReset`.)
    func save(id: UUID?, _ draft: BusinessCalendarDraft, on connection: PostgresConnection) async throws -> BusinessCalendar {
        let zones = try await connection.run("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = \(draft.timeZone))", logger: logger)
        for try await known in zones.decode(Bool.self) where !known {
            throw Problem.validationFailed([.init(pointer: "/time_zone", message: "\(draft.timeZone) is not a time zone this server knows (use an IANA name such as Asia/Tokyo)")])
        }
        let name = draft.name.trimmed
        let rows: PostgresRowSequence
        do {
            if let id {
                rows = try await connection.run("""
                    UPDATE business_calendars
                    SET name = \(name), time_zone = \(draft.timeZone), national_holidays = \(draft.nationalHolidays.rawValue),
                        version = version + 1, updated_at = now()
                    WHERE id = \(id)
                    RETURNING id
                    """, logger: logger)
            } else {
                rows = try await connection.run("""
                    INSERT INTO business_calendars (name, time_zone, national_holidays)
                    VALUES (\(name), \(draft.timeZone), \(draft.nationalHolidays.rawValue))
                    RETURNING id
                    """, logger: logger)
            }
            var saved: UUID?
            for try await row in rows.decode(UUID.self) { saved = row }
            guard let saved else { throw Self.notFound(id ?? UUID()) }
            try await connection.perform("DELETE FROM business_hours WHERE calendar_id = \(saved)", logger: logger)
            try await connection.perform("""
                INSERT INTO business_hours (calendar_id, weekday, opens, closes)
                SELECT \(saved), weekday, opens::time, closes::time
                FROM unnest(\(draft.hours.map { $0.weekday })::int[], \(draft.hours.map(\.opens))::text[], \(draft.hours.map(\.closes))::text[])
                     AS h(weekday, opens, closes)
                """, logger: logger)
            try await connection.perform("DELETE FROM business_closed_days WHERE calendar_id = \(saved)", logger: logger)
            try await connection.perform("""
                INSERT INTO business_closed_days (calendar_id, day, name)
                SELECT \(saved), day::date, name
                FROM unnest(\(draft.closedDays.map(\.date))::text[], \(draft.closedDays.map(\.name))::text[]) AS d(day, name)
                """, logger: logger)
            return try await calendar(id: saved, on: connection)
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "name-taken"), status: .conflict, title: "Name taken", detail: "Another calendar is called \(name).")
        }
    }

    /// Removes a calendar; false if there was none.
    func delete(id: UUID, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("DELETE FROM business_calendars WHERE id = \(id) RETURNING id", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Business seconds between two instants, by `business_seconds` (migration 0025).
    func businessSeconds(calendar: UUID, from: Date, to: Date, on connection: PostgresConnection) async throws -> Double {
        let rows = try await connection.run("SELECT business_seconds(\(calendar), \(from), \(to))", logger: logger)
        for try await seconds in rows.decode(Double.self) { return seconds }
        return 0
    }

    /// When `seconds` of business time after `from` run out, by `business_time_add`; nil when the
    /// calendar has no hours in the next two years.
    func businessTimeAdd(calendar: UUID, from: Date, seconds: Int64, on connection: PostgresConnection) async throws -> Date? {
        let rows = try await connection.run("SELECT business_time_add(\(calendar), \(from), \(Double(seconds)))", logger: logger)
        for try await due in rows.decode(Date?.self) { return due }
        return nil
    }

    static func notFound(_ id: UUID) -> Problem {
        Problem.notFound("There is no business calendar \(id.uuidString.lowercased()).")
    }

    /// Fills in hours and closed days, two statements for any number of calendars.
    private func withDays(_ calendars: [BusinessCalendar], on connection: PostgresConnection) async throws -> [BusinessCalendar] {
        guard !calendars.isEmpty else { return calendars }
        let ids = calendars.map(\.id)
        var hours: [UUID: [BusinessCalendar.Hours]] = [:]
        let hourRows = try await connection.run("""
            SELECT calendar_id, weekday::int, to_char(opens, 'HH24:MI'), to_char(closes, 'HH24:MI')
            FROM business_hours WHERE calendar_id = ANY(\(ids)) ORDER BY weekday, opens
            """, logger: logger)
        for try await (calendar, weekday, opens, closes) in hourRows.decode((UUID, Int, String, String).self) {
            hours[calendar, default: []].append(.init(weekday: weekday, opens: opens, closes: closes))
        }
        var closed: [UUID: [BusinessCalendar.ClosedDay]] = [:]
        let dayRows = try await connection.run("""
            SELECT calendar_id, to_char(day, 'YYYY-MM-DD'), name FROM business_closed_days WHERE calendar_id = ANY(\(ids)) ORDER BY day
            """, logger: logger)
        for try await (calendar, day, name) in dayRows.decode((UUID, String, String).self) {
            closed[calendar, default: []].append(.init(date: day, name: name))
        }
        return calendars.map { calendar in
            var calendar = calendar
            calendar.hours = hours[calendar.id] ?? []
            calendar.closedDays = closed[calendar.id] ?? []
            return calendar
        }
    }
}
