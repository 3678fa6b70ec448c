-- The response-time and SLA rollups cut a period that begins at a local time the clocks repeat
-- (01:00 on the night they go back, hourly in every zone with summer time; midnight, daily, in
-- Atlantic/Azores) at the second of its two instants: PostgreSQL reads a repeated local time as the
-- later one. The reports and business time take the first (`ReportKind.instant`, 0092), and the
-- fold computes each period from its own bounds, so the facts of the first occurrence fell out of
-- the rolled-up period (the API review: a first response at 01:30 EDT on 2026-11-01 read count 0 in
-- the hourly rollup, 1 computed live). The hour before a repeated one likewise ended an hour late.
--
-- `first_instant` is the reports' reading, written once for SQL; the fold now uses it for both
-- bounds. The periods stored with the later reading are removed and their instants left as changes,
-- so the next fold computes them again. The rest of the fold is 0038's, unchanged.
CREATE OR REPLACE FUNCTION first_instant(local timestamp, zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT least(local AT TIME ZONE zone, (local - interval '1 hour') AT TIME ZONE zone + interval '1 hour')
$$;

CREATE OR REPLACE FUNCTION fold_report_response_periods() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    -- Periods ending by the last full hour are closed; a fact committed later than that, for an
    -- earlier instant, leaves a change behind and is folded next time.
    horizon constant timestamptz := date_trunc('hour', now());
    first_fact timestamptz;
    z record;
    grain text;
    computed bigint := 0;
    added bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7382660038);
    -- Most folds find nothing to do (no change, no hour closed since the last): they stop here,
    -- having read three small tables.
    IF NOT EXISTS (SELECT FROM report_response_changes)
       AND NOT EXISTS (SELECT FROM report_response_zones v LEFT JOIN report_response_fold_state s USING (zone)
                       WHERE s.closed_through IS DISTINCT FROM horizon)
       AND NOT EXISTS (SELECT zone FROM report_response_fold_state EXCEPT SELECT zone FROM report_response_zones) THEN
        RETURN 0;
    END IF;

    -- A zone no calendar uses any more (its rows exist only while its fold state does).
    DELETE FROM report_response_periods
    WHERE zone IN (SELECT zone FROM report_response_fold_state EXCEPT SELECT zone FROM report_response_zones);
    DELETE FROM report_sla_periods
    WHERE zone IN (SELECT zone FROM report_response_fold_state EXCEPT SELECT zone FROM report_response_zones);
    DELETE FROM report_response_fold_state WHERE zone NOT IN (SELECT zone FROM report_response_zones);

    IF to_regclass('pg_temp.report_response_targets') IS NOT NULL THEN  -- a second fold in one transaction
        DROP TABLE report_response_touched, report_response_targets;
    END IF;
    CREATE TEMP TABLE report_response_touched ON COMMIT DROP AS
    WITH taken AS (DELETE FROM report_response_changes RETURNING at)
    SELECT DISTINCT date_trunc('hour', at) AS hour FROM taken;
    CREATE TEMP TABLE report_response_targets (local_start timestamp, starts timestamptz, ends timestamptz) ON COMMIT DROP;

    first_fact := date_trunc('hour', least((SELECT min(responded_at) FROM ticket_responses),
                                           (SELECT min(entered_at) FROM ticket_status_periods WHERE status = 'solved')));

    FOR z IN SELECT v.zone, s.closed_through FROM report_response_zones v LEFT JOIN report_response_fold_state s USING (zone) LOOP
        FOREACH grain IN ARRAY ARRAY['hour', 'day', 'week', 'month'] LOOP
            -- The periods to compute: those holding a touched hour, and those closed since the zone's
            -- last fold. An hour can straddle two periods in a zone off the hour (Asia/Kolkata), so
            -- both its ends are looked at.
            TRUNCATE report_response_targets;
            INSERT INTO report_response_targets (local_start, starts, ends)
            SELECT local_start, first_instant(local_start, z.zone), first_instant(local_start + ('1 ' || grain)::interval, z.zone)
            FROM (SELECT DISTINCT date_trunc(grain, i AT TIME ZONE z.zone) AS local_start
                  FROM (SELECT hour FROM report_response_touched
                        UNION
                        SELECT generate_series(coalesce(z.closed_through, first_fact, horizon), horizon - interval '1 hour', interval '1 hour')) AS h,
                       LATERAL (VALUES (h.hour), (h.hour + interval '1 hour' - interval '1 microsecond')) AS instants(i)) AS touched
            WHERE first_instant(local_start + ('1 ' || grain)::interval, z.zone) <= horizon;
            GET DIAGNOSTICS added = ROW_COUNT;
            CONTINUE WHEN added = 0;
            computed := computed + added;
            ANALYZE report_response_targets;

            DELETE FROM report_response_periods r USING report_response_targets t
            WHERE r.zone = z.zone AND r.unit = grain AND r.local_start = t.local_start;

            INSERT INTO report_response_periods (zone, unit, channel, local_start, metric, starts, ends, count,
                                                 wall_median, wall_p90, wall_mean, business_median, business_p90, business_mean)
            SELECT z.zone, grain, c.channel, t.local_start, m.metric, t.starts, t.ends, coalesce(a.count, 0),
                   a.wall_median, a.wall_p90, a.wall_mean, a.business_median, a.business_p90, a.business_mean
            FROM report_response_targets t
            CROSS JOIN (VALUES ('all'), ('email'), ('webform'), ('sms'), ('chat')) AS c(channel)
            CROSS JOIN (VALUES ('first_response'), ('next_response'), ('resolution')) AS m(metric)
            LEFT JOIN (
                SELECT date_trunc(grain, x.at AT TIME ZONE z.zone) AS local_start, x.metric,
                       CASE WHEN grouping(x.channel) = 1 THEN 'all' ELSE x.channel END AS channel,
                       count(*) AS count,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.wall_seconds) AS wall_median,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY x.wall_seconds) AS wall_p90,
                       avg(x.wall_seconds) AS wall_mean,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.business_seconds) AS business_median,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY x.business_seconds) AS business_p90,
                       avg(x.business_seconds) AS business_mean
                FROM report_responses x
                WHERE x.at >= (SELECT min(starts) FROM report_response_targets) AND x.at < (SELECT max(ends) FROM report_response_targets)
                  AND date_trunc(grain, x.at AT TIME ZONE z.zone) IN (SELECT local_start FROM report_response_targets)
                GROUP BY GROUPING SETS ((date_trunc(grain, x.at AT TIME ZONE z.zone), x.metric, x.channel),
                                        (date_trunc(grain, x.at AT TIME ZONE z.zone), x.metric))
            ) a ON a.local_start = t.local_start AND a.metric = m.metric AND a.channel = c.channel;

            DELETE FROM report_sla_periods r USING report_response_targets t
            WHERE r.zone = z.zone AND r.unit = grain AND r.local_start = t.local_start;

            INSERT INTO report_sla_periods (zone, unit, channel, local_start, target, starts, ends, measured, met, breached, overdue_median)
            SELECT z.zone, grain, c.channel, t.local_start, g.target, t.starts, t.ends,
                   coalesce(a.measured, 0), coalesce(a.met, 0), coalesce(a.breached, 0), a.overdue_median
            FROM report_response_targets t
            CROSS JOIN (VALUES ('all'), ('email'), ('webform'), ('sms'), ('chat')) AS c(channel)
            CROSS JOIN (VALUES ('first_response'), ('next_response'), ('resolution')) AS g(target)
            LEFT JOIN (
                SELECT date_trunc(grain, x.at AT TIME ZONE z.zone) AS local_start, x.target,
                       CASE WHEN grouping(x.channel) = 1 THEN 'all' ELSE x.channel END AS channel,
                       count(*) AS measured, count(*) FILTER (WHERE x.met) AS met, count(*) FILTER (WHERE NOT x.met) AS breached,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.overdue_seconds) FILTER (WHERE NOT x.met) AS overdue_median
                FROM report_sla_ended x
                WHERE x.at >= (SELECT min(starts) FROM report_response_targets) AND x.at < (SELECT max(ends) FROM report_response_targets)
                  AND date_trunc(grain, x.at AT TIME ZONE z.zone) IN (SELECT local_start FROM report_response_targets)
                GROUP BY GROUPING SETS ((date_trunc(grain, x.at AT TIME ZONE z.zone), x.target, x.channel),
                                        (date_trunc(grain, x.at AT TIME ZONE z.zone), x.target))
            ) a ON a.local_start = t.local_start AND a.target = g.target AND a.channel = c.channel;
        END LOOP;
        INSERT INTO report_response_fold_state AS s (zone, closed_through) VALUES (z.zone, horizon)
        ON CONFLICT (zone) DO UPDATE SET closed_through = greatest(s.closed_through, excluded.closed_through);
    END LOOP;
    RETURN computed;
END
$$;

WITH misread AS (
    DELETE FROM report_response_periods
    WHERE starts <> first_instant(local_start, zone) OR ends <> first_instant(local_start + ('1 ' || unit)::interval, zone)
    RETURNING first_instant(local_start, zone) AS at
)
INSERT INTO report_response_changes (at) SELECT DISTINCT at FROM misread;

WITH misread AS (
    DELETE FROM report_sla_periods
    WHERE starts <> first_instant(local_start, zone) OR ends <> first_instant(local_start + ('1 ' || unit)::interval, zone)
    RETURNING first_instant(local_start, zone) AS at
)
INSERT INTO report_response_changes (at) SELECT DISTINCT at FROM misread;
