import Foundation
import MadoguchiAPI

extension APIHandler {
    var calendars: CalendarStore { CalendarStore(logger: logger) }

    func listBusinessCalendars(_ input: Operations.ListBusinessCalendars.Input) async throws -> Operations.ListBusinessCalendars.Output {
        let all = try await database.withConnection { try await calendars.list(on: $0) }
        return .ok(.init(body: .json(.init(items: all.map(Components.Schemas.BusinessCalendar.init)))))
    }

    func getBusinessCalendar(_ input: Operations.GetBusinessCalendar.Input) async throws -> Operations.GetBusinessCalendar.Output {
        let calendar = try await database.withConnection { try await calendars.calendar(id: input.path.calendarId.uuid, on: $0) }
        tagVersion(calendar.version)
        return .ok(.init(body: .json(.init(calendar))))
    }

    func createBusinessCalendar(_ input: Operations.CreateBusinessCalendar.Input) async throws -> Operations.CreateBusinessCalendar.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let draft = try BusinessCalendarDraft(body)
        let principal = try principal
        let calendar = try await database.withTransaction { connection in
            let saved = try await calendars.save(id: nil, draft, on: connection)
            try await EventStore(logger: logger).record(.calendarCreated, actor: principal, data: ["calendar_id": saved.id.lowercased], on: connection)
            return saved
        }
        tagVersion(calendar.version)
        return .created(.init(body: .json(.init(calendar))))
    }

    func replaceBusinessCalendar(_ input: Operations.ReplaceBusinessCalendar.Input) async throws -> Operations.ReplaceBusinessCalendar.Output {
        guard case .json(let body) = input.body else { throw Problem.internalError }
        let draft = try BusinessCalendarDraft(body)
        let principal = try principal
        let precondition = try VersionPrecondition(input.headers.ifMatch)
        let id = input.path.calendarId.uuid
        let (calendar, reset) = try await database.withTransaction { connection in
            // The row locked whether or not If-Match came, so that two edits compare what they replace in turn.
            let lockedVersion = try await calendars.lockedVersion(id: id, on: connection)
            try await precondition.check("Calendar \(id.lowercased)") { lockedVersion }
            let before = try await calendars.calendar(id: id, on: connection)
            if draft.hours.isEmpty && id == BusinessCalendar.standardID {
                // Every ticket without an SLA policy counts in it (solves' business time, reports).
                throw Problem.validationFailed([.init(pointer: "/weekly_hours", message: "the standard calendar counts the business time of every ticket without an SLA policy; it keeps opening hours")])
            }
            if draft.hours.isEmpty, let policy = try await SLAPolicyStore(logger: logger).policyName(countingIn: id, on: connection) {
                // Its policy's clocks would never fall due again (see `SLAPolicyStore.save`).
                throw Problem.validationFailed([.init(pointer: "/weekly_hours", message: "SLA policy \(policy) counts in this calendar, whose clocks would never fall due without opening hours; give the policy another calendar first")])
            }
            let saved = try await calendars.save(id: id, draft, on: connection)
            try await EventStore(logger: logger).record(
                .calendarUpdated, actor: principal, data: ["calendar_id": saved.id.lowercased, "version": saved.version], on: connection)
            // Its tickets' running clocks count in it as it now stands (a closed day added for tomorrow);
            // a new name moves none, so their versions (agents' ETags) stay.
            let reset = saved.movesNoClock(since: before) ? nil : try await SLAPolicyStore(logger: logger).requestClockReset(.calendar(id), on: connection)
            return (saved, reset)
        }
        if let reset { await SLAPolicyStore(logger: logger).finishClockReset(reset, in: database) }
        tagVersion(calendar.version)
        return .ok(.init(body: .json(.init(calendar))))
    }

    func deleteBusinessCalendar(_ input: Operations.DeleteBusinessCalendar.Input) async throws -> Operations.DeleteBusinessCalendar.Output {
        let id = input.path.calendarId.uuid
        let principal = try principal
        // Every ticket without an SLA policy counts business time in the standard calendar: without
        // it, each of their responses and solves would be recorded as taking no business time at all.
        guard id != BusinessCalendar.standardID else {
            throw Problem(Problem.Kind(rawValue: "calendar-in-use"), status: .conflict, title: "Calendar in use",
                          detail: "The standard calendar counts business time for every ticket without an SLA policy; change its hours instead.")
        }
        try await database.withTransaction { connection in
            let deleted: Bool
            do {
                deleted = try await calendars.delete(id: id, on: connection)
            } catch where error.sqlState == .foreignKeyViolation {
                throw Problem(Problem.Kind(rawValue: "calendar-in-use"), status: .conflict, title: "Calendar in use",
                              detail: "An SLA policy counts in calendar \(id.lowercased); give the policy another calendar first.")
            }
            guard deleted else { throw CalendarStore.notFound(id) }
            try await EventStore(logger: logger).record(.calendarDeleted, actor: principal, data: ["calendar_id": id.lowercased], on: connection)
        }
        return .noContent(.init())
    }

    /// The calendar's business time between `from` and `to`, or the instant `add_seconds` of it after
    /// `from`: the SQL functions every SLA clock and report uses, so a caller can check any answer.
    func getBusinessTime(_ input: Operations.GetBusinessTime.Input) async throws -> Operations.GetBusinessTime.Output {
        let query = input.query
        let id = input.path.calendarId.uuid
        switch (query.to, query.addSeconds) {
        case (nil, nil), (.some, .some):
            throw Problem.invalidParameter("to", "give exactly one of to and add_seconds")
        case (let to?, nil):
            guard to >= query.from else { throw Problem.invalidParameter("to", "must not be before from") }
            // Bounded work: the function walks the calendar day by day.
            guard to.timeIntervalSince(query.from) <= Self.longestBusinessTimeSpan else {
                throw Problem.invalidParameter("to", "must be at most 3 years after from")
            }
            let seconds = try await database.withConnection { connection in
                _ = try await calendars.calendar(id: id, on: connection)
                return try await calendars.businessSeconds(calendar: id, from: query.from, to: to, on: connection)
            }
            return .ok(.init(body: .json(.init(
                calendarId: id.resourceID, from: query.from, to: to, businessSeconds: seconds, wallSeconds: to.timeIntervalSince(query.from)))))
        case (nil, let add?):
            guard (0...Self.longestAddedBusinessTime).contains(add) else {
                throw Problem.invalidParameter("add_seconds", "must be between 0 and \(Self.longestAddedBusinessTime)")
            }
            let due = try await database.withConnection { connection in
                _ = try await calendars.calendar(id: id, on: connection)
                return try await calendars.businessTimeAdd(calendar: id, from: query.from, seconds: add, on: connection)
            }
            // An answer no RFC 3339 date-time can hold (`10004-03-11T…`) is no answer.
            if let due, due > RFC3339.latest {
                throw Problem.invalidParameter("add_seconds", "runs out after the year 9999 from \(query.from.rfc3339UTC)")
            }
            return .ok(.init(body: .json(.init(calendarId: id.resourceID, from: query.from, addSeconds: add, dueAt: due))))
        }
    }

    static let longestBusinessTimeSpan: TimeInterval = 3 * 366 * 86400
    static let longestAddedBusinessTime: Int64 = 31_536_000
}

extension BusinessCalendarDraft {
    static let weekdays: [Components.Schemas.BusinessHours.DayPayload] = [.mon, .tue, .wed, .thu, .fri, .sat, .sun]

    /// From the request body; a 422 naming every field the schema alone could not check.
    init(_ body: Components.Schemas.BusinessCalendarInput) throws {
        self.init(
            name: body.name,
            timeZone: body.timeZone ?? "Asia/Tokyo",
            nationalHolidays: body.nationalHolidays.flatMap { BusinessCalendar.NationalHolidays(rawValue: $0.rawValue) } ?? .jp,
            hours: body.weeklyHours.map { hours in
                .init(weekday: (Self.weekdays.firstIndex(of: hours.day) ?? 0) + 1, opens: hours.opens, closes: hours.closes)
            },
            closedDays: (body.closedDays ?? []).map { .init(date: $0.date, name: $0.name ?? "") })
        let problems = problems()
        if !problems.isEmpty { throw Problem.validationFailed(problems) }
    }
}

extension Components.Schemas.BusinessCalendar {
    init(_ calendar: BusinessCalendar) {
        self.init(
            id: calendar.id.resourceID, name: calendar.name, timeZone: calendar.timeZone,
            nationalHolidays: .init(rawValue: calendar.nationalHolidays.rawValue)!,
            weeklyHours: calendar.hours.map { hours in
                .init(day: BusinessCalendarDraft.weekdays[hours.weekday - 1], opens: hours.opens, closes: hours.closes)
            },
            closedDays: calendar.closedDays.map { .init(date: $0.date, name: $0.name) },
            version: calendar.version, createdAt: calendar.createdAt, updatedAt: calendar.updatedAt)
    }
}
