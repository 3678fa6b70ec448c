-- Response times and SLA outcomes per local period, computed once a period has closed. A median or a p90 cannot be
-- added up from smaller parts the way the volume's counts are (migration 0035), so the rollup keeps
-- each closed period's exact answer, per zone and granularity, for all channels and for each one; a
-- report reads those and computes live only what the rollup cannot answer: the period still running,
-- a period cut short by the requested range, a period with a fact changed since it was computed,
-- a zone no calendar uses, and the filters the rollup does not keep (queue, category, tag, agent,
-- priority). At 100,000 tickets a year asked by day read 509,000 facts (1.1 s); it now reads 1,098
-- rows and today's facts. SLA outcomes are kept the same way for the clocks that stopped (the view
-- `report_sla_ended`); a period holding a clock still running past due is computed live, since how
-- late it is grows by the second.

-- One row per zone × granularity × channel ('all' or one) × closed period × metric, written whole
-- for each period computed (a metric with no facts has count 0), so a period's rows being there
-- means it was computed. `starts` and `ends` are the period's instants, for the staleness check.
CREATE TABLE report_response_periods (
    zone             text NOT NULL,
    unit             text NOT NULL CHECK (unit IN ('hour', 'day', 'week', 'month')),
    channel          text NOT NULL,
    local_start      timestamp NOT NULL,
    metric           text NOT NULL,
    starts           timestamptz NOT NULL,
    ends             timestamptz NOT NULL,
    count            bigint NOT NULL,
    wall_median      double precision,
    wall_p90         double precision,
    wall_mean        double precision,
    business_median  double precision,
    business_p90     double precision,
    business_mean    double precision,
    PRIMARY KEY (zone, unit, channel, local_start, metric)
);

-- Per zone × granularity × channel × closed period × target, likewise: the clocks that stopped in
-- the period, met or breached, and the median of how late the breached ones were.
CREATE TABLE report_sla_periods (
    zone             text NOT NULL,
    unit             text NOT NULL CHECK (unit IN ('hour', 'day', 'week', 'month')),
    channel          text NOT NULL,
    local_start      timestamp NOT NULL,
    target           text NOT NULL,
    starts           timestamptz NOT NULL,
    ends             timestamptz NOT NULL,
    measured         bigint NOT NULL,
    met              bigint NOT NULL,
    breached         bigint NOT NULL,
    overdue_median   double precision,
    PRIMARY KEY (zone, unit, channel, local_start, target)
);

-- The clocks still running past due, which a period's SLA rollup cannot hold, found by their due time.
CREATE INDEX tickets_response_due ON tickets (response_due_at) WHERE response_due_at IS NOT NULL;

-- A period's resolutions, read from the index alone (at 1,000,000 tickets, today's 1,778 among the
-- 5,020 stretches entered today: 12 ms through the stretches' own index, 1 ms through this one).
CREATE INDEX ticket_status_periods_solved ON ticket_status_periods (entered_at) INCLUDE (ticket_id, business_seconds_since_opened)
    WHERE status = 'solved';

-- When a fact the view `report_responses` or `report_sla_ended` reads changed, appended by the triggers below in the
-- changing transaction. A computed period holding such an instant is stale: reports compute it live
-- until the fold has recomputed it and taken the change away.
CREATE TABLE report_response_changes (
    at timestamptz NOT NULL
);
CREATE INDEX report_response_changes_at ON report_response_changes (at);

-- How far each zone's closed periods were computed (periods ending by then).
CREATE TABLE report_response_fold_state (
    zone           text PRIMARY KEY,
    closed_through timestamptz NOT NULL
);

CREATE FUNCTION ticket_responses_report_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO report_response_changes (at) VALUES (OLD.responded_at);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO report_response_changes (at) VALUES (NEW.responded_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ticket_responses_report_changes AFTER INSERT OR DELETE OR UPDATE
    ON ticket_responses FOR EACH ROW EXECUTE FUNCTION ticket_responses_report_changes();

-- Only a solved stretch is a resolution fact.
CREATE FUNCTION ticket_status_periods_report_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'solved' THEN
        INSERT INTO report_response_changes (at) VALUES (OLD.entered_at);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'solved' THEN
        INSERT INTO report_response_changes (at) VALUES (NEW.entered_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ticket_status_periods_report_changes AFTER INSERT OR DELETE OR UPDATE OF status, entered_at, ticket_id, business_seconds_since_opened
    ON ticket_status_periods FOR EACH ROW EXECUTE FUNCTION ticket_status_periods_report_changes();

-- A ticket's channel splits its facts, its opening time measures its resolutions, and its resolution
-- due time decides whether they were in time.
CREATE FUNCTION tickets_report_response_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_response_changes (at)
    SELECT responded_at FROM ticket_responses WHERE ticket_id = NEW.id
    UNION ALL
    SELECT entered_at FROM ticket_status_periods WHERE ticket_id = NEW.id AND status = 'solved';
    RETURN NULL;
END
$$;
CREATE TRIGGER tickets_report_response_changes AFTER UPDATE OF channel, created_at, resolution_due_at ON tickets
    FOR EACH ROW WHEN (OLD.channel IS DISTINCT FROM NEW.channel OR OLD.created_at IS DISTINCT FROM NEW.created_at
                       OR OLD.resolution_due_at IS DISTINCT FROM NEW.resolution_due_at)
    EXECUTE FUNCTION tickets_report_response_changes();

-- Computes the periods closed since the last fold and recomputes those with changed facts, for every
-- zone of `report_response_zones` (a zone new to it is computed from its first fact); forgets zones
-- no longer there. Folds run one at a time (any number of workers may call it). Returns the periods
-- computed.
CREATE FUNCTION fold_report_response_periods() RETURNS bigint
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
            SELECT local_start, local_start AT TIME ZONE z.zone, (local_start + ('1 ' || grain)::interval) AT TIME ZONE z.zone
            FROM (SELECT DISTINCT date_trunc(grain, i AT TIME ZONE z.zone) AS local_start
                  FROM (SELECT hour FROM report_response_touched
                        UNION
                        SELECT generate_series(coalesce(z.closed_through, first_fact, horizon), horizon - interval '1 hour', interval '1 hour')) AS h,
                       LATERAL (VALUES (h.hour), (h.hour + interval '1 hour' - interval '1 microsecond')) AS instants(i)) AS touched
            WHERE (local_start + ('1 ' || grain)::interval) AT TIME ZONE z.zone <= horizon;
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

-- Forgets every computed period; the next fold computes them all again from the facts (after a bulk
-- load that ran with triggers off, or to check the rollup against the facts).
CREATE FUNCTION rebuild_report_response_periods() RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(7382660038);
    TRUNCATE report_response_periods, report_sla_periods, report_response_fold_state, report_response_changes;
$$;
