import Foundation
import PostgresNIO

/// The reports, each one SQL statement over a view of `sql/views/` (the view's comment says what
/// counts). Every statement starts from the same two parts: `params`, the request's values as bind
/// parameters, and `periods`, the local periods of the range in the request's zone; a body adds its
/// own common table expressions (`, name AS (…)`) or goes straight to its SELECT. Rows come in
/// period order, every period present (zeros included), so a chart needs no gap-filling of its own.
/// JSON and CSV read the same statement.
package enum ReportKind: String, Sendable, CaseIterable {
    case volume
    case backlog
    case responseTimes = "response-times"
    case agents
    case sla
    case slaBreaches = "sla-breaches"
    case categories

    /// Whether its rows are periods of `granularity` (the agents, categories and breaches reports
    /// are one list over the whole range, and `granularity` plays no part in them).
    var isPeriodic: Bool { ![.agents, .categories, .slaBreaches].contains(self) }

    /// The statement a JSON answer runs when asked with no paging parameters: for breaches the
    /// first page (`BreachPage`), the whole report otherwise.
    package func jsonQuery(_ request: ReportRequest) -> PostgresQuery {
        self == .slaBreaches ? BreachPage(limit: BreachPage.defaultLimit).query(request) : query(request)
    }

    /// The statement's columns, in order; the CSV header.
    package var columns: [String] {
        switch self {
        case .volume: ["period", "period_start", "channel", "new_tickets", "inbound_messages"]
        case .backlog: ["period", "period_end", "status", "open_tickets", "age_under_1d", "age_1d_to_3d", "age_3d_to_7d", "age_7d_to_30d", "age_over_30d"]
        case .responseTimes: [
            "period", "period_start", "metric", "count", "wall_median_seconds", "wall_p90_seconds", "wall_mean_seconds",
            "business_median_seconds", "business_p90_seconds", "business_mean_seconds",
        ]
        case .agents: [
            "agent_id", "agent_name", "tickets_handled", "replies_sent", "notes", "first_responses",
            "first_response_median_business_seconds", "first_response_median_wall_seconds", "solved", "reopened", "reopen_rate",
            "approval_returns",
        ]
        case .sla: ["period", "period_start", "target", "measured", "met", "breached", "attainment", "overdue_median_seconds"]
        case .slaBreaches: ["target", "ticket_id", "ticket_number", "due_at", "ended_at", "overdue_seconds", "agent_id", "channel", "priority"]
        case .categories: [
            "dimension", "value", "tickets", "inbound_messages", "first_response_median_business_seconds",
            "first_response_median_wall_seconds", "resolution_median_wall_seconds",
        ]
        }
    }

    /// The report's statement: every row, as CSV carries them.
    package func query(_ request: ReportRequest) -> PostgresQuery {
        let filters = request.filters
        return """
            WITH params AS (
                SELECT \(request.from)::date AS from_day, \(request.to)::date AS to_day, \(request.granularity.rawValue)::text AS unit,
                       \(request.timeZone)::text AS zone, \(filters.channel?.rawValue)::text AS channel, \(filters.queue)::text AS queue,
                       \(filters.category)::text AS category, \(filters.tag)::text AS tag, \(filters.agentID)::uuid AS agent_id,
                       \(filters.priority?.rawValue)::text AS priority
            ), bounds AS (
                SELECT date_trunc(unit, from_day::timestamp) AS first_start, from_day::timestamp AS local_from,
                       (to_day + 1)::timestamp AS local_end, unit, zone,
                       \(unescaped: Self.instant("from_day::timestamp", zone: "zone")) AS starts_at,
                       \(unescaped: Self.instant("(to_day + 1)::timestamp", zone: "zone")) AS ends_at
                FROM params
            ), periods AS (
                -- An hour the clocks skip (spring forward) has no period; one they repeat (fall back)
                -- is one period of two hours, as the facts of both fall under its local hour.
                SELECT local_start, s.starts,
                       \(unescaped: Self.instant("least(local_start + ('1 ' || b.unit)::interval, b.local_end)", zone: "b.zone")) AS ends,
                       \(unescaped: Self.periodLabel("local_start", unit: "b.unit")) AS period
                FROM bounds b, generate_series(b.first_start, b.local_end - interval '1 microsecond', ('1 ' || b.unit)::interval) AS local_start,
                     LATERAL (SELECT \(unescaped: Self.instant("local_start", zone: "b.zone")) AS starts) s
                WHERE b.unit <> 'hour' OR s.starts AT TIME ZONE b.zone = local_start
            )
            \(unescaped: body)
            """
    }

    /// Every filter, on a view row `x` with the columns channel, queue, category, tags, priority, agent_id.
    private static let filtered = filters { "p.\($0)" }

    /// Every filter, with each filter's value written by `value` (given the `params` column's name).
    static func filters(_ value: (String) -> String) -> String {
        """
        \(dimensionsFiltered(value)) AND (\(value("tag")) IS NULL OR \(value("tag")) = ANY(x.tags))
        AND (\(value("agent_id")) IS NULL OR x.agent_id = \(value("agent_id")))
        """
    }

    /// The filters a rollup kept per hour can answer, on a row `x` with channel, queue, category, priority.
    private static let dimensionsFiltered = dimensionsFiltered { "p.\($0)" }

    private static func dimensionsFiltered(_ value: (String) -> String) -> String {
        // category=(none) is the tickets without one, as the categories report names them.
        ["channel", "queue", "category", "priority"].map { column in
            column == "category"
                ? "(\(value(column)) IS NULL OR x.category IS NOT DISTINCT FROM nullif(\(value(column)), '\(Ticket.noCategory)'))"
                : "(\(value(column)) IS NULL OR x.\(column) = \(value(column)))"
        }.joined(separator: " AND ")
    }

    /// Whether the hourly rollups answer this request exactly: no filter they do not keep (a tag, an
    /// agent), and every period starting and ending on a UTC hour (not so in a zone such as
    /// Asia/Kolkata, +05:30). Evaluated once per statement (an InitPlan), so the arm not taken costs
    /// nothing.
    private static let hourlyRollupAnswers = """
        (SELECT p.tag IS NULL AND p.agent_id IS NULL
                AND bool_and(pe.starts = date_trunc('hour', pe.starts, 'UTC') AND pe.ends = date_trunc('hour', pe.ends, 'UTC'))
         FROM params p, periods pe GROUP BY p.tag, p.agent_id)
        """

    /// The instant a local time names in `zone`: the first of the two when the clocks go back and
    /// repeat it (PostgreSQL's own reading takes the second, so the hour before a repeated one ended an
    /// hour late), and the moment the clocks jumped to when they go forward past it.
    static func instant(_ local: String, zone: String) -> String {
        "least((\(local)) AT TIME ZONE \(zone), ((\(local)) - interval '1 hour') AT TIME ZONE \(zone) + interval '1 hour')"
    }

    /// A period's name, as the `period` column shows it: 2026-12-03 14:00, 2026-12-03, 2026-W49, 2026-12.
    private static func periodLabel(_ localStart: String, unit: String) -> String {
        """
        to_char(\(localStart), CASE \(unit) WHEN 'hour' THEN 'YYYY-MM-DD HH24:00' WHEN 'day' THEN 'YYYY-MM-DD'
                                       WHEN 'week' THEN 'IYYY-"W"IW' ELSE 'YYYY-MM' END)
        """
    }

    /// Whether the request sets none of these filters (`params` columns). Evaluated once per
    /// statement (an InitPlan), so the arm it turns off costs nothing.
    private static func absent(_ filters: String...) -> String {
        "(SELECT \(filters.map { "\($0) IS NULL" }.joined(separator: " AND ")) FROM params)"
    }

    /// Whether the request filters on nothing a ticket has (the agent aside).
    private static let dimensionless = absent("channel", "queue", "category", "tag", "priority")

    /// The columns the categories report reads from either of its views.
    private static let categoryColumns = """
        x.dimension, x.value, x.inbound_messages, x.first_response_business_seconds, x.first_response_wall_seconds,
        x.resolution_wall_seconds
        """

    /// Whether the request has no filter at all.
    private static let unfiltered = absent("channel", "queue", "category", "tag", "agent_id", "priority")

    /// Whether the response-time and SLA rollups (migration 0038) can answer this request: no filter
    /// but the channel, which they keep. Evaluated once per statement (an InitPlan).
    private static let periodRollupAnswers = absent("queue", "category", "tag", "agent_id", "priority")

    /// A rollup row `r` (migration 0038) that answers for its period: this request's zone,
    /// granularity and channel, a period whole inside the range, and no fact of it changed since it
    /// was computed. The values are scalar subqueries so that they reach the primary key whatever the
    /// planner believes of the table (joined to `params`, a freshly filled table read all its rows).
    private static let rolledPeriodAnswers = """
        r.zone = (SELECT zone FROM params) AND r.unit = (SELECT unit FROM params)
        AND r.channel = (SELECT coalesce(channel, 'all') FROM params)
        AND r.local_start >= (SELECT local_from FROM bounds) AND r.local_start < (SELECT local_end FROM bounds)
        AND r.local_start + ('1 ' || (SELECT unit FROM params))::interval <= (SELECT local_end FROM bounds)
        AND NOT EXISTS (SELECT FROM report_response_changes c WHERE c.at >= r.starts AND c.at < r.ends)
        """

    /// The facts of the periods a response-time or SLA report computes live, from `narrow` (the
    /// channel alone, looked up per row) when the rollup could answer the request, else from `full`
    /// with every filter. `columns` are read from either. Without a channel filter the narrow
    /// branch never reads the channel, so no ticket is looked up at all.
    private static func liveFacts(_ columns: String, narrow: String, full: String) -> String {
        """
        (SELECT \(columns) FROM \(narrow) x
         WHERE \(periodRollupAnswers) AND (SELECT channel IS NULL FROM params) AND \(inRange("x.at"))
           AND x.at >= (SELECT min(starts) FROM live_periods) AND x.at < (SELECT max(ends) FROM live_periods)
         UNION ALL
         SELECT \(columns) FROM \(narrow) x
         WHERE \(periodRollupAnswers) AND (SELECT channel IS NOT NULL FROM params) AND \(inRange("x.at"))
           AND x.at >= (SELECT min(starts) FROM live_periods) AND x.at < (SELECT max(ends) FROM live_periods)
           AND x.channel = (SELECT channel FROM params)
         UNION ALL
         SELECT \(columns) FROM \(full) x, params p
         WHERE NOT \(periodRollupAnswers) AND \(inRange("x.at"))
           AND x.at >= (SELECT min(starts) FROM live_periods) AND x.at < (SELECT max(ends) FROM live_periods)
           AND \(filtered))
        """
    }

    /// The row's time inside the requested range (bounds as scalar subqueries, so an index on it is used).
    private static func inRange(_ column: String) -> String {
        "\(column) >= (SELECT starts_at FROM bounds) AND \(column) < (SELECT ends_at FROM bounds)"
    }

    private static func localPeriod(_ column: String) -> String {
        "date_trunc((SELECT unit FROM params), \(column) AT TIME ZONE (SELECT zone FROM params))"
    }

    private var body: String {
        switch self {
        case .volume:
            """
            , channels AS (
                SELECT c AS channel, ord FROM params p, unnest(ARRAY['email', 'webform', 'sms', 'chat']) WITH ORDINALITY AS u(c, ord)
                WHERE p.channel IS NULL OR c = p.channel
            ), counted AS (
                SELECT t.local_start, v.channel, v.new_tickets, v.inbound_messages
                FROM (SELECT \(Self.localPeriod("x.hour")) AS local_start,
                             sum(email_tickets) AS email_tickets, sum(email_messages) AS email_messages,
                             sum(webform_tickets) AS webform_tickets, sum(webform_messages) AS webform_messages,
                             sum(sms_tickets) AS sms_tickets, sum(sms_messages) AS sms_messages,
                             sum(chat_tickets) AS chat_tickets, sum(chat_messages) AS chat_messages
                      FROM report_arrival_channel_hours x
                      WHERE \(Self.hourlyRollupAnswers) AND \(Self.absent("queue", "category", "priority"))
                        AND \(Self.inRange("x.hour"))
                      GROUP BY 1) AS t
                CROSS JOIN LATERAL (VALUES ('email', t.email_tickets, t.email_messages), ('webform', t.webform_tickets, t.webform_messages),
                                           ('sms', t.sms_tickets, t.sms_messages), ('chat', t.chat_tickets, t.chat_messages))
                    AS v(channel, new_tickets, inbound_messages)
                UNION ALL
                SELECT \(Self.localPeriod("x.hour")) AS local_start, x.channel,
                       sum(x.count) FILTER (WHERE x.kind = 'ticket') AS new_tickets,
                       sum(x.count) FILTER (WHERE x.kind = 'message') AS inbound_messages
                FROM report_arrival_hours x, params p
                WHERE \(Self.hourlyRollupAnswers) AND NOT \(Self.absent("queue", "category", "priority"))
                  AND \(Self.inRange("x.hour")) AND \(Self.dimensionsFiltered)
                GROUP BY 1, 2
                UNION ALL
                SELECT \(Self.localPeriod("x.at")) AS local_start, x.channel,
                       count(*) FILTER (WHERE x.kind = 'ticket') AS new_tickets,
                       count(*) FILTER (WHERE x.kind = 'message') AS inbound_messages
                FROM report_arrivals x, params p
                WHERE NOT \(Self.hourlyRollupAnswers) AND \(Self.inRange("x.at")) AND \(Self.filtered)
                GROUP BY 1, 2
            )
            SELECT pe.period, pe.starts AS period_start, c.channel,
                   coalesce(n.new_tickets, 0)::bigint AS new_tickets, coalesce(n.inbound_messages, 0)::bigint AS inbound_messages
            FROM periods pe CROSS JOIN channels c
            LEFT JOIN counted n ON n.local_start = pe.local_start AND n.channel = c.channel
            ORDER BY pe.local_start, c.ord
            """
        case .backlog:
            """
            , statuses AS (
                SELECT s AS status, ord FROM unnest(ARRAY['new', 'open', 'pending', 'on_hold']) WITH ORDINALITY AS u(s, ord)
            ), boundary AS (
                -- The last hour boundary before now.
                SELECT date_trunc('hour', now(), 'UTC') AS at, now() AS now
            ), answered AS (
                -- `rollup_at`: the hour boundary the rollup answers for the period's end; for a
                -- period still `running` (its end is now), the last boundary before now, to which
                -- `since_boundary` adds what changed since.
                SELECT p.local_start, p.period, least(p.ends, b.now) AS at, p.ends > b.now AS running,
                       CASE WHEN p.ends > b.now THEN b.at ELSE p.ends END AS rollup_at,
                       \(Self.hourlyRollupAnswers) AND \(Self.absent("channel", "queue", "category", "priority")) AS rolled_up
                FROM periods p, boundary b
                -- A period not yet begun has no end state to show: repeating now's into it drew a
                -- flat line into the future on a dashboard's chart.
                WHERE p.starts <= b.now
            ), moments AS (
                SELECT local_start, period, at, running, rollup_at, lag(rollup_at) OVER (ORDER BY local_start) AS previous_rollup_at, rolled_up
                FROM answered
            ), since_boundary AS (
                -- The backlog at now minus the backlog at the boundary, per status and age bucket,
                -- from the only stretches whose count or bucket can differ between the two: entered
                -- or left since the boundary, or open throughout while the ticket turned 1, 3, 7 or
                -- 30 days old. A stretch counts at an instant it covers, [entered, left), in the
                -- bucket of the instant minus the ticket's opening, as report_status_periods says.
                SELECT x.status,
                       sum(e.sign) FILTER (WHERE e.age < interval '1 day') AS under_1d,
                       sum(e.sign) FILTER (WHERE e.age >= interval '1 day' AND e.age < interval '3 days') AS d1_to_3d,
                       sum(e.sign) FILTER (WHERE e.age >= interval '3 days' AND e.age < interval '7 days') AS d3_to_7d,
                       sum(e.sign) FILTER (WHERE e.age >= interval '7 days' AND e.age < interval '30 days') AS d7_to_30d,
                       sum(e.sign) FILTER (WHERE e.age >= interval '30 days') AS over_30d
                FROM (SELECT s.ticket_id, s.status, s.entered_at, s.left_at
                      FROM ticket_status_periods s, boundary b
                      WHERE s.status IN ('new', 'open', 'pending', 'on_hold') AND s.entered_at > b.at AND s.entered_at <= b.now
                      UNION
                      SELECT s.ticket_id, s.status, s.entered_at, s.left_at
                      FROM ticket_status_periods s, boundary b
                      WHERE s.status IN ('new', 'open', 'pending', 'on_hold') AND s.left_at IS NOT NULL
                        AND s.left_at > b.at AND s.left_at <= b.now
                      UNION
                      SELECT s.ticket_id, s.status, s.entered_at, s.left_at
                      FROM boundary b
                      -- In hours: `b.at - interval '30 days'` steps calendar days in the session's time
                      -- zone, an hour off for a month after a clock change where it has them.
                      CROSS JOIN (VALUES (interval '24 hours'), (interval '72 hours'), (interval '168 hours'), (interval '720 hours')) AS turned(age)
                      -- Lateral and not flattened (OFFSET 0), so that each age reads its own short range of
                      -- the tickets' opening times (joined, the planner hashed every open ticket with every
                      -- current stretch: 0.6 s at 1,000,000 tickets).
                      CROSS JOIN LATERAL (SELECT t.id, t.status FROM tickets t
                                          WHERE t.created_at > b.at - turned.age AND t.created_at <= b.now - turned.age OFFSET 0) AS t
                      JOIN ticket_status_periods s ON s.ticket_id = t.id AND s.left_at IS NULL AND s.status = t.status
                                                  AND s.status IN ('new', 'open', 'pending', 'on_hold')) AS x
                -- Each stretch's ticket read by its key (lateral, not flattened): joined, the planner
                -- could not tell how few stretches there are, and at 100,000 tickets hashed them all
                -- (a year's backlog: 63 ms, of which 23 ms the tickets' scan; 35 ms now).
                CROSS JOIN LATERAL (SELECT t.created_at FROM tickets t WHERE t.id = x.ticket_id OFFSET 0) AS t
                CROSS JOIN boundary b
                CROSS JOIN LATERAL (VALUES (b.at, -1), (b.now, 1)) AS instant(at, sign)
                CROSS JOIN LATERAL (SELECT instant.sign AS sign, instant.at - t.created_at AS age) AS e
                WHERE x.entered_at <= instant.at AND (x.left_at IS NULL OR x.left_at > instant.at)
                  AND EXISTS (SELECT FROM moments WHERE rolled_up AND running)
                GROUP BY x.status
            ), rolled AS (
                SELECT r.local_start, r.status, sum(r.under_1d) AS under_1d, sum(r.d1_to_3d) AS d1_to_3d, sum(r.d3_to_7d) AS d3_to_7d,
                       sum(r.d7_to_30d) AS d7_to_30d, sum(r.over_30d) AS over_30d
                FROM (SELECT m.local_start, x.status, x.under_1d, x.d1_to_3d, x.d3_to_7d, x.d7_to_30d, x.over_30d
                      FROM moments m
                      JOIN report_backlog_hours x ON x.hour <= m.rollup_at AND x.hour > coalesce(m.previous_rollup_at, '-infinity')
                      WHERE m.rolled_up
                      UNION ALL
                      -- Carried to the later periods by the running sum, as every change is.
                      SELECT (SELECT min(local_start) FROM moments WHERE rolled_up AND running), c.status,
                             coalesce(c.under_1d, 0), coalesce(c.d1_to_3d, 0), coalesce(c.d3_to_7d, 0), coalesce(c.d7_to_30d, 0),
                             coalesce(c.over_30d, 0)
                      FROM since_boundary c) AS r
                GROUP BY 1, 2
            ), instants AS (
                SELECT DISTINCT at FROM moments WHERE NOT rolled_up
            ), open_at AS (
                -- What was open at each instant the rollup does not answer: the stretches covering it;
                -- at now (the current period's end, and any later one's) the tickets' present statuses,
                -- which the status trigger keeps one and the same as the stretches covering now. With
                -- no filter, now's are read from the index of open tickets' ages alone (migration 0043:
                -- at 100,000 tickets, 30,000 open, 49 ms through the table, 5 ms through the index).
                SELECT i.at, x.status, x.opened_at
                FROM instants i
                JOIN report_status_periods x ON tstzrange(x.entered_at, x.left_at) @> i.at
                CROSS JOIN params p
                WHERE i.at < now() AND x.status IN ('new', 'open', 'pending', 'on_hold') AND \(Self.filtered)
                UNION ALL
                SELECT i.at, t.status, t.created_at
                FROM instants i, tickets t
                WHERE i.at = now() AND \(Self.unfiltered) AND t.status IN ('new', 'open', 'pending', 'on_hold')
                UNION ALL
                SELECT i.at, x.status, x.opened_at
                FROM instants i,
                     (SELECT t.status, t.created_at AS opened_at, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority,
                             t.assignee_id AS agent_id
                      FROM tickets t WHERE t.status IN ('new', 'open', 'pending', 'on_hold')) AS x, params p
                WHERE i.at = now() AND NOT \(Self.unfiltered) AND \(Self.filtered)
            ), live AS (
                SELECT x.at, x.status, count(*) AS open_tickets,
                       count(*) FILTER (WHERE x.at - x.opened_at < interval '1 day') AS age_under_1d,
                       count(*) FILTER (WHERE x.at - x.opened_at >= interval '1 day' AND x.at - x.opened_at < interval '3 days') AS age_1d_to_3d,
                       count(*) FILTER (WHERE x.at - x.opened_at >= interval '3 days' AND x.at - x.opened_at < interval '7 days') AS age_3d_to_7d,
                       count(*) FILTER (WHERE x.at - x.opened_at >= interval '7 days' AND x.at - x.opened_at < interval '30 days') AS age_7d_to_30d,
                       count(*) FILTER (WHERE x.at - x.opened_at >= interval '30 days') AS age_over_30d
                FROM open_at x
                GROUP BY x.at, x.status
            ), counted AS (
                SELECT local_start, status, under_1d + d1_to_3d + d3_to_7d + d7_to_30d + over_30d AS open_tickets,
                       under_1d AS age_under_1d, d1_to_3d AS age_1d_to_3d, d3_to_7d AS age_3d_to_7d, d7_to_30d AS age_7d_to_30d,
                       over_30d AS age_over_30d
                FROM (SELECT local_start, status, sum(under_1d) OVER running AS under_1d, sum(d1_to_3d) OVER running AS d1_to_3d,
                             sum(d3_to_7d) OVER running AS d3_to_7d, sum(d7_to_30d) OVER running AS d7_to_30d,
                             sum(over_30d) OVER running AS over_30d
                      FROM (SELECT m.local_start, s.status, coalesce(r.under_1d, 0) AS under_1d, coalesce(r.d1_to_3d, 0) AS d1_to_3d,
                                   coalesce(r.d3_to_7d, 0) AS d3_to_7d, coalesce(r.d7_to_30d, 0) AS d7_to_30d, coalesce(r.over_30d, 0) AS over_30d
                            FROM moments m CROSS JOIN statuses s
                            LEFT JOIN rolled r ON r.local_start = m.local_start AND r.status = s.status
                            WHERE m.rolled_up) AS per_moment
                      WINDOW running AS (PARTITION BY status ORDER BY local_start)) AS cumulative
                UNION ALL
                SELECT m.local_start, l.status, l.open_tickets, l.age_under_1d, l.age_1d_to_3d, l.age_3d_to_7d, l.age_7d_to_30d, l.age_over_30d
                FROM moments m JOIN live l ON l.at = m.at
                WHERE NOT m.rolled_up
            )
            SELECT m.period, m.at AS period_end, s.status, coalesce(c.open_tickets, 0)::bigint AS open_tickets,
                   coalesce(c.age_under_1d, 0)::bigint AS age_under_1d, coalesce(c.age_1d_to_3d, 0)::bigint AS age_1d_to_3d,
                   coalesce(c.age_3d_to_7d, 0)::bigint AS age_3d_to_7d, coalesce(c.age_7d_to_30d, 0)::bigint AS age_7d_to_30d,
                   coalesce(c.age_over_30d, 0)::bigint AS age_over_30d
            FROM moments m CROSS JOIN statuses s
            LEFT JOIN counted c ON c.local_start = m.local_start AND c.status = s.status
            ORDER BY m.local_start, s.ord
            """
        case .responseTimes:
            // Closed periods come from the rollup (migration 0038) when it holds them for this zone
            // and channel and no fact of theirs changed since; the others are computed from the facts.
            // The rolled rows hold every metric of their period already and go straight to the answer.
            """
            , metrics AS (
                SELECT m AS metric, ord FROM unnest(ARRAY['first_response', 'next_response', 'resolution']) WITH ORDINALITY AS u(m, ord)
            ), rolled AS (
                SELECT r.local_start, (SELECT pe.starts FROM periods pe WHERE pe.local_start = r.local_start) AS starts, r.metric, r.count,
                       r.wall_median, r.wall_p90, r.wall_mean,
                       r.business_median, r.business_p90, r.business_mean
                FROM report_response_periods r
                WHERE \(Self.periodRollupAnswers) AND \(Self.rolledPeriodAnswers)
            ), live_periods AS (
                SELECT local_start, starts, ends, period FROM periods WHERE local_start NOT IN (SELECT local_start FROM rolled)
            ), live AS (
                SELECT \(Self.localPeriod("x.at")) AS local_start, x.metric, count(*) AS count,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.wall_seconds) AS wall_median,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY x.wall_seconds) AS wall_p90,
                       avg(x.wall_seconds) AS wall_mean,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.business_seconds) AS business_median,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY x.business_seconds) AS business_p90,
                       avg(x.business_seconds) AS business_mean
                FROM \(Self.liveFacts("x.metric, x.at, x.wall_seconds, x.business_seconds", narrow: "report_response_facts", full: "report_responses")) AS x
                WHERE \(Self.localPeriod("x.at")) IN (SELECT local_start FROM live_periods)
                GROUP BY 1, 2
            )
            SELECT period, period_start, metric, count::bigint, wall_median::float8 AS wall_median_seconds,
                   wall_p90::float8 AS wall_p90_seconds, wall_mean::float8 AS wall_mean_seconds,
                   business_median::float8 AS business_median_seconds, business_p90::float8 AS business_p90_seconds,
                   business_mean::float8 AS business_mean_seconds
            FROM (SELECT r.local_start, \(Self.periodLabel("r.local_start", unit: "p.unit")) AS period, r.starts AS period_start,
                         m.ord, r.metric, r.count, r.wall_median, r.wall_p90, r.wall_mean, r.business_median, r.business_p90, r.business_mean
                  FROM rolled r JOIN metrics m USING (metric), params p
                  UNION ALL
                  SELECT pe.local_start, pe.period, pe.starts, m.ord, m.metric, coalesce(l.count, 0), l.wall_median, l.wall_p90, l.wall_mean,
                         l.business_median, l.business_p90, l.business_mean
                  FROM live_periods pe CROSS JOIN metrics m
                  LEFT JOIN live l ON l.local_start = pe.local_start AND l.metric = m.metric) AS answered
            ORDER BY local_start, ord
            """
        case .agents:
            // Aggregated per agent first, then joined to the team: joined the other way round, the
            // actions were read once per agent. What an agent wrote (replies, notes: many rows) and
            // everything else (first responses, solves: one or so per ticket) are aggregated apart,
            // each reading only its own arms of the view: tickets handled are distinct (agent,
            // ticket) pairs, and only the first responses are sorted for their medians. One
            // aggregate over every row sorted all of them (at 100,000 tickets, a year: 663,000 rows).
            """
            , actions AS NOT MATERIALIZED (
                SELECT x.agent_id, x.ticket_id, x.kind, x.business_seconds, x.wall_seconds
                FROM report_agent_actions x, params p
                WHERE \(Self.dimensionless) AND \(Self.inRange("x.at")) AND (p.agent_id IS NULL OR x.agent_id = p.agent_id)
                UNION ALL
                SELECT x.agent_id, x.ticket_id, x.kind, x.business_seconds, x.wall_seconds
                FROM report_agent_activity x, params p
                WHERE NOT \(Self.dimensionless) AND \(Self.inRange("x.at")) AND \(Self.filtered)
            ), written AS MATERIALIZED (
                SELECT w.agent_id, count(*) AS tickets_handled, sum(w.replies) AS replies_sent, sum(w.notes) AS notes
                FROM (SELECT x.agent_id, x.ticket_id, count(*) FILTER (WHERE x.kind = 'reply') AS replies,
                             count(*) FILTER (WHERE x.kind = 'note') AS notes
                      FROM actions x WHERE x.kind IN ('reply', 'note')
                      GROUP BY x.agent_id, x.ticket_id) AS w
                GROUP BY w.agent_id
            ), settled AS MATERIALIZED (
                SELECT x.agent_id,
                       count(*) FILTER (WHERE x.kind = 'first_response') AS first_responses,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.business_seconds) AS first_business,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.wall_seconds) AS first_wall,
                       count(DISTINCT x.ticket_id) FILTER (WHERE x.kind = 'solved') AS solved,
                       count(DISTINCT x.ticket_id) FILTER (WHERE x.kind = 'reopened') AS reopened,
                       count(*) FILTER (WHERE x.kind = 'returned') AS returned
                FROM actions x WHERE x.kind IN ('first_response', 'solved', 'reopened', 'returned')
                GROUP BY x.agent_id
            ), activity AS (
                SELECT coalesce(w.agent_id, s.agent_id) AS agent_id, w.tickets_handled, w.replies_sent, w.notes,
                       s.first_responses, s.first_business, s.first_wall, s.solved, s.reopened, s.returned
                FROM written w FULL JOIN settled s ON s.agent_id = w.agent_id
            )
            SELECT a.id::text AS agent_id, a.display_name AS agent_name,
                   coalesce(x.tickets_handled, 0)::bigint AS tickets_handled, coalesce(x.replies_sent, 0)::bigint AS replies_sent,
                   coalesce(x.notes, 0)::bigint AS notes, coalesce(x.first_responses, 0)::bigint AS first_responses,
                   x.first_business::float8 AS first_response_median_business_seconds, x.first_wall::float8 AS first_response_median_wall_seconds,
                   coalesce(x.solved, 0)::bigint AS solved, coalesce(x.reopened, 0)::bigint AS reopened,
                   (x.reopened::float8 / nullif(x.solved, 0))::float8 AS reopen_rate, coalesce(x.returned, 0)::bigint AS approval_returns
            FROM agents a CROSS JOIN params p
            LEFT JOIN activity x ON x.agent_id = a.id
            WHERE a.id <> '00000000-0000-4000-8000-00000000a070' AND (p.agent_id IS NULL OR a.id = p.agent_id)
              AND (a.active OR x.agent_id IS NOT NULL)
            ORDER BY a.display_name, a.id
            """
        case .sla:
            // As response times: closed periods from the rollup (migration 0038), except a period
            // holding a clock still running past due (how late it is grows by the second), which is
            // computed from the outcomes with the rest.
            """
            , targets AS (
                SELECT g AS target, ord FROM unnest(ARRAY['first_response', 'next_response', 'resolution']) WITH ORDINALITY AS u(g, ord)
            ), rolled AS (
                SELECT r.local_start, (SELECT pe.starts FROM periods pe WHERE pe.local_start = r.local_start) AS starts, r.target,
                       r.measured, r.met, r.breached, r.overdue_median
                FROM report_sla_periods r
                WHERE \(Self.periodRollupAnswers) AND \(Self.rolledPeriodAnswers)
                  AND NOT EXISTS (SELECT FROM tickets t WHERE t.response_due_at >= r.starts AND t.response_due_at < least(r.ends, now()))
                  AND NOT EXISTS (SELECT FROM tickets t WHERE t.resolution_due_at >= r.starts AND t.resolution_due_at < least(r.ends, now())
                                    AND t.status NOT IN ('solved', 'closed'))
            ), live_periods AS (
                SELECT local_start, starts, ends, period FROM periods WHERE local_start NOT IN (SELECT local_start FROM rolled)
            ), live AS (
                SELECT \(Self.localPeriod("x.at")) AS local_start, x.target, count(*) AS measured,
                       count(*) FILTER (WHERE x.met) AS met, count(*) FILTER (WHERE NOT x.met) AS breached,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.overdue_seconds) FILTER (WHERE NOT x.met) AS overdue_median
                FROM \(Self.liveFacts("x.target, x.at, x.met, x.overdue_seconds", narrow: "report_sla_facts", full: "report_sla_outcomes")) AS x
                WHERE \(Self.localPeriod("x.at")) IN (SELECT local_start FROM live_periods)
                GROUP BY 1, 2
            )
            SELECT period, period_start, target, measured::bigint, met::bigint, breached::bigint,
                   (met::float8 / nullif(measured, 0))::float8 AS attainment, overdue_median::float8 AS overdue_median_seconds
            FROM (SELECT r.local_start, \(Self.periodLabel("r.local_start", unit: "p.unit")) AS period, r.starts AS period_start,
                         g.ord, r.target, r.measured, r.met, r.breached, r.overdue_median
                  FROM rolled r JOIN targets g USING (target), params p
                  UNION ALL
                  SELECT pe.local_start, pe.period, pe.starts, g.ord, g.target, coalesce(l.measured, 0), coalesce(l.met, 0),
                         coalesce(l.breached, 0), l.overdue_median
                  FROM live_periods pe CROSS JOIN targets g
                  LEFT JOIN live l ON l.local_start = pe.local_start AND l.target = g.target) AS answered
            ORDER BY local_start, ord
            """
        case .slaBreaches:
            """
            SELECT x.target, x.ticket_id::text AS ticket_id, x.ticket_number, x.due_at, x.ended_at, x.overdue_seconds,
                   x.agent_id::text AS agent_id, x.channel, x.priority
            FROM report_sla_outcomes x, params p
            WHERE NOT x.met AND \(Self.inRange("x.at")) AND \(Self.filtered)
            ORDER BY x.at, x.ticket_number, x.target
            """
        case .categories:
            // The same rows two ways: a range holding a fifth of all tickets or more reads
            // `report_categories_all` (each measure aggregated once over every ticket), a shorter one
            // `report_categories` (each ticket's measures read by its key). `wide` counts the range's
            // tickets up to that fifth and no further (the table's row estimate gives the total; -1,
            // never analyzed, makes the fifth one ticket).
            """
            , fifth AS MATERIALIZED (
                SELECT greatest(c.reltuples::bigint / 5, 1) AS tickets FROM pg_class c WHERE c.oid = 'tickets'::regclass
            ), wide AS MATERIALIZED (
                SELECT (SELECT count(*) FROM (SELECT FROM tickets t WHERE \(Self.inRange("t.created_at"))
                                              LIMIT (SELECT tickets FROM fifth)) AS counted) >= (SELECT tickets FROM fifth) AS wide
            ), counted AS (
                SELECT x.dimension, x.value, count(*) AS tickets, sum(x.inbound_messages) AS inbound_messages,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.first_response_business_seconds) AS first_business,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.first_response_wall_seconds) AS first_wall,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.resolution_wall_seconds) AS resolution_wall
                FROM (SELECT \(Self.categoryColumns) FROM report_categories x, params p
                      WHERE NOT (SELECT wide FROM wide) AND \(Self.inRange("x.at")) AND \(Self.filtered)
                      UNION ALL
                      SELECT \(Self.categoryColumns) FROM report_categories_all x, params p
                      WHERE (SELECT wide FROM wide) AND \(Self.inRange("x.at")) AND \(Self.filtered)) AS x
                GROUP BY 1, 2
            )
            SELECT dimension, value, tickets::bigint, coalesce(inbound_messages, 0)::bigint AS inbound_messages,
                   first_business::float8 AS first_response_median_business_seconds, first_wall::float8 AS first_response_median_wall_seconds,
                   resolution_wall::float8 AS resolution_median_wall_seconds
            FROM counted
            ORDER BY dimension, tickets DESC, value
            """
        }
    }
}
