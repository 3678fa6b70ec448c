import Foundation
import HTTPTypes
import PostgresNIO
import Testing
@testable import Madoguchi

/// Business calendars and the business time they define, checked against clocks worked out by hand.
@Suite("Business calendars count only business time", .timeLimit(.minutes(15)))
struct CalendarTests {
    static let standard = BusinessCalendar.standardID.uuidString.lowercased()

    /// Business seconds between two instants by `calendar`, through the API (and so the SQL function).
    static func businessSeconds(_ app: TestApp, _ key: String, _ calendar: String, _ from: String, _ to: String) async throws -> Double? {
        let response = try await app.request(.get, "/v1/business-calendars/\(calendar)/business-time?from=\(escaped(from))&to=\(escaped(to))", key: key)
        #expect(response.status == .ok, "\(response.text)")
        return try response.json["business_seconds"] as? Double
    }

    /// When `seconds` of business time after `from` run out, as an instant.
    static func due(_ app: TestApp, _ key: String, _ calendar: String, _ from: String, plus seconds: Int) async throws -> Date? {
        let response = try await app.request(.get, "/v1/business-calendars/\(calendar)/business-time?from=\(escaped(from))&add_seconds=\(seconds)", key: key)
        #expect(response.status == .ok, "\(response.text)")
        return (try response.json["due_at"] as? String).flatMap { try? Date($0, strategy: .iso8601) }
    }

    static func escaped(_ time: String) -> String { time.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? time }

    static func instant(_ text: String) throws -> Date { try Date(text, strategy: .iso8601) }

    @Test("the standard calendar (weekdays 9–18 Tokyo): Friday 17:55 to Monday 09:10 is 15 minutes; a national holiday and 年末年始 are skipped")
    func standardCalendar() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let list = try await app.request(.get, "/v1/business-calendars", key: dashboard)
            let standard = try #require((try list.json["items"] as? [[String: Any]])?.first { $0["id"] as? String == Self.standard })
            #expect(standard["time_zone"] as? String == "Asia/Tokyo")
            #expect((standard["weekly_hours"] as? [[String: String]])?.count == 5)
            #expect((standard["weekly_hours"] as? [[String: String]])?.first == ["day": "mon", "opens": "09:00", "closes": "18:00"])

            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2026-11-27T17:55:00+09:00", "2026-11-30T09:10:00+09:00") == 900)
            // Monday 23 November 2026 is 勤労感謝の日.
            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2026-11-20T17:55:00+09:00", "2026-11-24T09:10:00+09:00") == 900)
            // 28 December (Monday) 17:00–18:00, then nothing until Monday 4 January 09:00–10:00.
            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2026-12-28T17:00:00+09:00", "2027-01-04T10:00:00+09:00") == 7200)
            // 22 September 2026 is 国民の休日, between 敬老の日 and 秋分の日: Friday 18th to Thursday 24th is one hour.
            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2026-09-18T17:30:00+09:00", "2026-09-24T09:30:00+09:00") == 3600)
            // Within one open stretch it is plain clock time; wholly inside a weekend it is nothing.
            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2026-12-01T10:00:00+09:00", "2026-12-01T10:00:30+09:00") == 30)
            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2026-11-28T10:00:00+09:00", "2026-11-29T20:00:00+09:00") == 0)

            #expect(try await Self.due(app, dashboard, Self.standard, "2026-11-27T17:55:00+09:00", plus: 900) == Self.instant("2026-11-30T09:10:00+09:00"))
            #expect(try await Self.due(app, dashboard, Self.standard, "2026-12-28T17:30:00+09:00", plus: 3600) == Self.instant("2027-01-04T09:30:00+09:00"))
            // The last 年末年始 the national holidays reach: 2027-12-29 (Wednesday) to 2028-01-03 (migration 0058).
            #expect(try await Self.due(app, dashboard, Self.standard, "2027-12-28T17:00:00+09:00", plus: 7200) == Self.instant("2028-01-04T10:00:00+09:00"))
            // 2028: Monday 20 March is 春分の日; 2028-12-29 to 2029-01-03 is 年末年始 (migration 0066).
            #expect(try await Self.businessSeconds(app, dashboard, Self.standard, "2028-03-17T17:55:00+09:00", "2028-03-21T09:10:00+09:00") == 900)
            #expect(try await Self.due(app, dashboard, Self.standard, "2028-12-28T17:30:00+09:00", plus: 3600) == Self.instant("2029-01-04T09:30:00+09:00"))
            // A clock started at night runs from the next opening.
            #expect(try await Self.due(app, dashboard, Self.standard, "2026-12-01T23:00:00+09:00", plus: 60) == Self.instant("2026-12-02T09:01:00+09:00"))
        }
    }

    @Test("business time does not depend on the session's time zone, even one that moves its clocks at midnight; a year of business time has a due time")
    func sessionZoneAndLongTargets() async throws {
        try await TestApp.run { app in
            let standard = BusinessCalendar.standardID
            try await app.database.withConnection { connection in
                // Cairo moved its clocks from 00:00 to 01:00 on Friday 25 April 2025.
                for zone in ["Africa/Cairo", "America/Santiago", "UTC"] {
                    try await connection.query(PostgresQuery(unsafeSQL: "SET TimeZone = '\(zone)'"), logger: TestCluster.logger)
                    let rows = try await connection.query("""
                        SELECT business_seconds(\(standard), '2025-04-25 17:55+09', '2025-04-28 09:10+09'),
                               business_time_add(\(standard), '2025-04-25 17:55+09', 900) = '2025-04-28 09:10+09'
                        """, logger: TestCluster.logger)
                    for try await (seconds, due) in rows.decode((Double, Bool).self) {
                        #expect(seconds == 900, "\(zone)")
                        #expect(due, "\(zone)")
                    }
                }
                try await connection.query("RESET TimeZone", logger: TestCluster.logger)
            }
            // A year of business time (the most a policy's target takes) on weekdays 9–18: about four years.
            let dashboard = try await app.keySecret(.dashboard)
            let due = try #require(try await Self.due(app, dashboard, Self.standard, "2026-06-01T09:00:00+09:00", plus: 31_536_000))
            #expect(due > (try Self.instant("2030-01-01T00:00:00+09:00")))
            try await app.database.withConnection { connection in
                let rows = try await connection.query(
                    "SELECT business_seconds(\(standard), '2026-06-01 09:00+09', \(due))", logger: TestCluster.logger)
                for try await seconds in rows.decode(Double.self) { #expect(seconds == 31_536_000) }
            }
        }
    }

    @Test("a split shift, a calendar in New York across the change to summer time, and a calendar with no hours")
    func ownCalendars() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let split = try await app.request(.post, "/v1/business-calendars", key: supervisor, json: """
                {"name":"昼休みあり","weekly_hours":[{"day":"mon","opens":"10:00","closes":"12:00"},{"day":"mon","opens":"13:00","closes":"17:00"}]}
                """)
            #expect(split.status == .created, "\(split.text)")
            let splitID = try #require(try split.json["id"] as? String)
            #expect(try split.json["national_holidays"] as? String == "jp")
            #expect(try await Self.businessSeconds(app, supervisor, splitID, "2026-11-30T11:30:00+09:00", "2026-11-30T13:30:00+09:00") == 3600)
            #expect(try await Self.due(app, supervisor, splitID, "2026-11-30T11:30:00+09:00", plus: 3600) == Self.instant("2026-11-30T13:30:00+09:00"))

            let york = try await app.request(.post, "/v1/business-calendars", key: supervisor, json: """
                {"name":"New York","time_zone":"America/New_York","national_holidays":"none",
                 "weekly_hours":[{"day":"mon","opens":"09:00","closes":"17:00"},{"day":"fri","opens":"09:00","closes":"17:00"}],
                 "closed_days":[{"date":"2026-11-26","name":"Thanksgiving"}]}
                """)
            #expect(york.status == .created, "\(york.text)")
            let yorkID = try #require(try york.json["id"] as? String)
            // Friday 16:55 EST to Monday 09:10 EST; then the same across 8 March 2026, when clocks go forward.
            #expect(try await Self.businessSeconds(app, supervisor, yorkID, "2026-11-27T16:55:00-05:00", "2026-11-30T09:10:00-05:00") == 900)
            #expect(try await Self.businessSeconds(app, supervisor, yorkID, "2026-03-06T16:55:00-05:00", "2026-03-09T09:10:00-04:00") == 900)
            // Japanese holidays do not close New York: Monday 23 November 2026 is a whole day.
            #expect(try await Self.businessSeconds(app, supervisor, yorkID, "2026-11-23T00:00:00-05:00", "2026-11-24T00:00:00-05:00") == 8 * 3600)

            let never = try await app.request(.post, "/v1/business-calendars", key: supervisor, json: #"{"name":"休業中","weekly_hours":[]}"#)
            let neverID = try #require(try never.json["id"] as? String)
            #expect(try await Self.businessSeconds(app, supervisor, neverID, "2026-11-27T00:00:00Z", "2026-12-27T00:00:00Z") == 0)
            let noDue = try await app.request(.get, "/v1/business-calendars/\(neverID)/business-time?from=2026-11-27T00:00:00Z&add_seconds=60", key: supervisor)
            #expect(noDue.status == .ok)
            #expect(try noDue.json["due_at"] == nil)
            // No SLA policy on it (its clocks would never fall due), nor a policy's calendar emptied.
            let onNever = try await app.request(.post, "/v1/sla-policies", key: supervisor, json: """
                {"name":"休業中SLA","calendar_id":"\(neverID)","targets":[{"priority":"normal","first_response_minutes":60}]}
                """)
            try expectProblem(onNever, .unprocessableContent, "validation-failed")
            #expect(onNever.text.contains("no opening hours"), "\(onNever.text)")
            let policy = try await app.request(.post, "/v1/sla-policies", key: supervisor, json: """
                {"name":"NY SLA","calendar_id":"\(yorkID)","targets":[{"priority":"normal","first_response_minutes":60}]}
                """)
            #expect(policy.status == .created, "\(policy.text)")
            let emptied = try await app.request(.put, "/v1/business-calendars/\(yorkID)", key: supervisor,
                                                json: #"{"name":"New York","time_zone":"America/New_York","weekly_hours":[]}"#)
            try expectProblem(emptied, .unprocessableContent, "validation-failed")
            #expect(emptied.text.contains("NY SLA"), "\(emptied.text)")
            // An answer past the year 9999 is none.
            let far = try await app.request(.get, "/v1/business-calendars/\(Self.standard)/business-time?from=9999-12-31T00:00:00Z&add_seconds=31536000", key: supervisor)
            try expectProblem(far, .badRequest, "invalid-parameter")
            #expect(far.text.contains("add_seconds"), "\(far.text)")
        }
    }

    @Test("an opening in the hour the clocks repeat is read as the first time the clock shows it; a desk open round the clock counts a repeated midnight hour once")
    func repeatedHour() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            func calendar(_ zone: String, opens: String, closes: String) async throws -> String {
                let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .map { #"{"day":"\#($0)","opens":"\#(opens)","closes":"\#(closes)"}"# }.joined(separator: ",")
                let created = try await app.request(.post, "/v1/business-calendars", key: supervisor, json: """
                    {"name":"\(zone) \(opens)","time_zone":"\(zone)","national_holidays":"none","weekly_hours":[\(days)]}
                    """)
                #expect(created.status == .created, "\(created.text)")
                return try #require(try created.json["id"] as? String)
            }
            // New York goes back from 02:00 EDT to 01:00 EST on Sunday 1 November 2026: a desk open
            // 01:00–09:00 opens at 01:00 EDT (05:00Z) and is open nine hours, not eight.
            let york = try await calendar("America/New_York", opens: "01:00", closes: "09:00")
            #expect(try await Self.businessSeconds(app, supervisor, york, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z") == 9 * 3600)
            #expect(try await Self.due(app, supervisor, york, "2026-11-01T05:00:00Z", plus: 1800) == Self.instant("2026-11-01T05:30:00Z"))
            // Havana goes back from 01:00 CDT to 00:00 CST the same day: a day of 25 hours, each counted once.
            let havana = try await calendar("America/Havana", opens: "00:00", closes: "24:00")
            #expect(try await Self.businessSeconds(app, supervisor, havana, "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z") == 48 * 3600)
        }
    }

    @Test("replacing a calendar changes its answers at once and raises its version; deleting it leaves a 404; each change is an event")
    func replaceAndDelete() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let created = try await app.request(.post, "/v1/business-calendars", key: supervisor, json: """
                {"name":"店舗","weekly_hours":[{"day":"tue","opens":"09:00","closes":"18:00"}]}
                """)
            let id = try #require(try created.json["id"] as? String)
            #expect(try created.json["version"] as? Int == 1)
            #expect(try await Self.businessSeconds(app, supervisor, id, "2026-12-01T00:00:00+09:00", "2026-12-02T00:00:00+09:00") == 9 * 3600)

            let replaced = try await app.request(.put, "/v1/business-calendars/\(id)", key: supervisor, json: """
                {"name":"店舗","weekly_hours":[{"day":"tue","opens":"09:00","closes":"18:00"}],"closed_days":[{"date":"2026-12-01","name":"棚卸し"}]}
                """)
            #expect(replaced.status == .ok, "\(replaced.text)")
            #expect(try replaced.json["version"] as? Int == 2)
            #expect((try replaced.json["closed_days"] as? [[String: String]]) == [["date": "2026-12-01", "name": "棚卸し"]])
            #expect(try await Self.businessSeconds(app, supervisor, id, "2026-12-01T00:00:00+09:00", "2026-12-02T00:00:00+09:00") == 0)

            #expect(try await app.request(.delete, "/v1/business-calendars/\(id)", key: supervisor).status == .noContent)
            try expectProblem(try await app.request(.get, "/v1/business-calendars/\(id)", key: supervisor), .notFound, "not-found")
            try expectProblem(try await app.request(.delete, "/v1/business-calendars/\(id)", key: supervisor), .notFound, "not-found")
            // The standard calendar stays: every ticket without a policy counts business time in it.
            try expectProblem(try await app.request(.delete, "/v1/business-calendars/00000000-0000-4000-8000-0000000ca1e0", key: supervisor),
                              .conflict, "calendar-in-use")
            try expectProblem(try await app.request(.get, "/v1/business-calendars/\(id)/business-time?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z",
                                                    key: supervisor), .notFound, "not-found")
            #expect(try await app.count("""
                SELECT count(*) FROM events WHERE type IN ('calendar.created', 'calendar.updated', 'calendar.deleted') AND data->>'calendar_id' = \(id)
                """) == 3)
        }
    }

    @Test("how far the national holidays reach, as the daily warning reads it: the day after the last one, whatever the session's zone; nothing when no calendar counts them")
    func holidaysKnownUntil() async throws {
        try await TestApp.run { app in
            func knownUntil() async throws -> Date? {
                try await app.database.withConnection { connection in
                    // A session in a zone far from UTC must not move the day.
                    _ = try await connection.query("SET TIME ZONE 'Pacific/Kiritimati'", logger: TestCluster.logger)
                    return try await SLAClockResetWorker.holidaysKnownUntil(on: connection, logger: TestCluster.logger)
                }
            }
            // The last shipped holiday is 勤労感謝の日 2028 (migration 0066).
            #expect(try await knownUntil() == Self.instant("2028-11-24T00:00:00Z"))
            try await app.execute("INSERT INTO national_holidays (country, day, name) VALUES ('jp', '2029-01-01', '元日')")
            #expect(try await knownUntil() == Self.instant("2029-01-02T00:00:00Z"))
            try await app.execute("UPDATE business_calendars SET national_holidays = 'none'")
            #expect(try await knownUntil() == nil)
        }
    }

    @Test("what a calendar cannot be is a clear problem naming the field, and nothing is written")
    func refusals() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            func refused(_ json: String, _ status: HTTPResponse.Status, _ type: String, pointer: String? = nil) async throws {
                let response = try await app.request(.post, "/v1/business-calendars", key: supervisor, json: json)
                try expectProblem(response, status, type)
                if let pointer { #expect((try response.json["errors"] as? [[String: String]])?.first?["pointer"] == pointer, "\(response.text)") }
            }
            try await refused(#"{"name":"a","weekly_hours":[{"day":"mon","opens":"10:00","closes":"12:00"},{"day":"mon","opens":"11:00","closes":"13:00"}]}"#,
                              .unprocessableContent, "validation-failed", pointer: "/weekly_hours/1")
            try await refused(#"{"name":"a","weekly_hours":[{"day":"mon","opens":"18:00","closes":"09:00"}]}"#,
                              .unprocessableContent, "validation-failed", pointer: "/weekly_hours/0")
            try await refused(#"{"name":"a","weekly_hours":[{"day":"mon","opens":"9:00","closes":"18:00"}]}"#, .unprocessableContent, "validation-failed")
            try await refused(#"{"name":"a","time_zone":"Mars/Olympus","weekly_hours":[]}"#, .unprocessableContent, "validation-failed", pointer: "/time_zone")
            try await refused(#"{"name":"a","weekly_hours":[],"closed_days":[{"date":"2026-02-30"}]}"#,
                              .unprocessableContent, "validation-failed", pointer: "/closed_days/0/date")
            try await refused(#"{"name":"a","weekly_hours":[],"closed_days":[{"date":"2026-12-31"},{"date":"2026-12-31"}]}"#,
                              .unprocessableContent, "validation-failed", pointer: "/closed_days/1/date")
            // Ten characters of digits and dashes are no date unless four, two and two: PostgreSQL read
            // 26-01-0005 as a 500 and 1-01-00005 as another day.
            for date in ["26-01-0005", "1-01-00005", "2026-1-005"] {
                try await refused(#"{"name":"a","weekly_hours":[],"closed_days":[{"date":"\#(date)"}]}"#,
                                  .unprocessableContent, "validation-failed", pointer: "/closed_days/0/date")
            }
            // The standard calendar counts every ticket without a policy: it keeps opening hours.
            let standard = try await app.request(.get, "/v1/business-calendars/\(Self.standard)", key: supervisor)
            let emptied = try await app.request(.put, "/v1/business-calendars/\(Self.standard)", key: supervisor,
                                                headers: [.ifMatch: try #require(standard.headers[.eTag])], json: #"{"name":"標準","weekly_hours":[]}"#)
            try expectProblem(emptied, .unprocessableContent, "validation-failed")
            try await refused(#"{"name":"  ","weekly_hours":[]}"#, .unprocessableContent, "validation-failed", pointer: "/name")
            try await refused(#"{"name":"標準","weekly_hours":[]}"#, .conflict, "name-taken")
            #expect(try await app.count("SELECT count(*) FROM business_calendars") == 1)

            let agent = try await app.keySecret(.agent)
            #expect(try await app.request(.post, "/v1/business-calendars", key: agent, json: #"{"name":"b","weekly_hours":[]}"#).status == .forbidden)

            let base = "/v1/business-calendars/\(Self.standard)/business-time?from=2026-12-01T00:00:00Z"
            try expectProblem(try await app.request(.get, base, key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, base + "&to=2026-12-02T00:00:00Z&add_seconds=5", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, base + "&to=2026-11-30T00:00:00Z", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, base + "&to=2036-12-02T00:00:00Z", key: agent), .badRequest, "invalid-parameter")
            try expectProblem(try await app.request(.get, base + "&add_seconds=-1", key: agent), .badRequest, "invalid-parameter")
        }
    }
}
