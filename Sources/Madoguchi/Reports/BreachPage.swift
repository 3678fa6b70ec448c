import Foundation
import PostgresNIO

/// A page of the SLA breaches report in JSON: up to `limit` breaches after `after`, in the report's
/// order (when, then ticket number, then target). CSV has every breach in one stream instead.
package struct BreachPage: Sendable {
    /// Where a page starts: after this row of the report's order. Its time is kept to the
    /// microsecond, as the database has it, so a page never repeats or skips a row of the same second.
    package struct Cursor: Sendable, Equatable {
        var atMicroseconds: Int64
        var ticketNumber: Int64
        var target: String

        static let targets: Set<String> = ["first_response", "next_response", "resolution"]

        init(atMicroseconds: Int64, ticketNumber: Int64, target: String) {
            self.atMicroseconds = atMicroseconds
            self.ticketNumber = ticketNumber
            self.target = target
        }

        /// A cursor this server issued (`text`), or a 400 naming `cursor`.
        init(_ text: String) throws {
            let parts = try PageCursor.decode(text, count: 3)
            guard let at = PageCursor.microseconds(parts[0]), let number = Int64(parts[1]), Self.targets.contains(parts[2]) else { throw PageCursor.invalid }
            self.init(atMicroseconds: at, ticketNumber: number, target: parts[2])
        }

        var text: String { PageCursor.encode([String(atMicroseconds), String(ticketNumber), target]) }
    }

    static let defaultLimit = 1_000
    static let maximumLimit = 10_000

    var limit: Int
    var after: Cursor?

    package init(limit: Int, after: Cursor? = nil) {
        self.limit = limit
        self.after = after
    }

    /// `limit` as asked (1–10,000), 1,000 when not given.
    static func limit(_ requested: Int?) throws -> Int {
        guard let requested else { return defaultLimit }
        guard (1...maximumLimit).contains(requested) else {
            throw Problem.invalidParameter("limit", "must be between 1 and \(maximumLimit), got \(requested)")
        }
        return requested
    }

    /// The page's rows, and one more when there are more: the report's nine columns, then the
    /// row's time in microseconds since 1970 (the next page's cursor).
    ///
    /// Each kind of clock (a view of its own, see `report_sla_outcomes`) is read in time order
    /// through its index from the cursor on, and stops after a page; the page is the first of those.
    /// Unlike the other reports' statements, the range and the filters are the bind parameters
    /// themselves rather than `params`: the planner then sees them, folds away every absent filter
    /// and knows how many rows the range holds, and so reads the index in order instead of sorting a
    /// year of breaches (migration 0041).
    func query(_ request: ReportRequest) -> PostgresQuery {
        let filters = request.filters
        var binds = PostgresBindings()
        binds.append(request.from)
        binds.append(request.to)
        binds.append(request.timeZone)
        binds.append(filters.channel?.rawValue)
        binds.append(filters.queue)
        binds.append(filters.category)
        binds.append(filters.tag)
        binds.append(filters.agentID)
        binds.append(filters.priority?.rawValue)
        binds.append(after?.atMicroseconds)
        binds.append(after?.ticketNumber)
        binds.append(after?.target)
        let filterValues = ["channel": "$4::text", "queue": "$5::text", "category": "$6::text", "tag": "$7::text", "agent_id": "$8::uuid",
                            "priority": "$9::text"]
        let afterAt = "(timestamptz 'epoch' + $10::bigint * interval '1 microsecond')"
        let clocks = ["report_sla_clock_responses", "report_sla_clock_resolutions", "report_sla_clock_running"].map { view in
            """
            (SELECT x.target, x.ticket_id, x.ticket_number, x.due_at, x.ended_at, x.overdue_seconds, x.agent_id, x.channel, x.priority, x.at
             FROM \(view) x
             WHERE NOT x.met AND x.at >= \(ReportKind.instant("$1::date::timestamp", zone: "$3::text"))
               AND x.at < \(ReportKind.instant("($2::date + 1)::timestamp", zone: "$3::text"))
               AND ($10::bigint IS NULL OR (x.at >= \(afterAt) AND (x.at, x.ticket_number, x.target) > (\(afterAt), $11::bigint, $12::text)))
               AND \(ReportKind.filters { filterValues[$0]! })
             ORDER BY x.at, x.ticket_number, x.target
             LIMIT \(limit + 1))
            """
        }
        return PostgresQuery(unsafeSQL: """
            SELECT target, ticket_id::text AS ticket_id, ticket_number, due_at, ended_at, overdue_seconds, agent_id::text AS agent_id, channel, priority,
                   (extract(epoch FROM at) * 1000000)::bigint AS at_microseconds
            FROM (\(clocks.joined(separator: "\nUNION ALL\n"))) AS x
            ORDER BY at, ticket_number, target
            LIMIT \(limit + 1)
            """, binds: binds)
    }

    /// The cursor after `row` (a row of `query`).
    static func cursor(after row: [ReportCell]) -> Cursor {
        Cursor(atMicroseconds: row[9].integer, ticketNumber: row[2].integer, target: row[0].text)
    }
}
