-- The backlog report looked up, for each period's end, every status stretch covering it: 25 s for a
-- year by day at 100,000 tickets. The backlog at an instant is a running sum: a stretch in an open
-- status adds one to its age bucket from the moment it enters the bucket (entering the status, or
-- the ticket turning 1, 3, 7 or 30 days old) and takes it away when it leaves (the next bucket, or
-- the stretch's end). These tables keep those additions and removals per hour, so the backlog at the
-- end of any hour is the sum of every hour up to it: a few rows an hour, however many tickets.
--
-- An event at instant t is kept under the first hour boundary at or after t, so the backlog at a
-- boundary T is exactly the events with t <= T: a stretch [entered, left) counts at T when
-- entered <= T < left, as report_status_periods says. A stretch still open gets its future bucket
-- changes too (turning 1, 3, 7, 30 days old); when it ends, the ones after its end are taken back.
-- Writers append to report_backlog_changes; compact_report_backlog() folds them into
-- report_backlog_counts (ReportRollupWorker); the view report_backlog_hours reads both.
CREATE TABLE report_backlog_counts (
    hour        timestamptz NOT NULL,
    status      text NOT NULL,
    under_1d    bigint NOT NULL,
    d1_to_3d    bigint NOT NULL,
    d3_to_7d    bigint NOT NULL,
    d7_to_30d   bigint NOT NULL,
    over_30d    bigint NOT NULL,
    PRIMARY KEY (hour, status)
);

CREATE TABLE report_backlog_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour        timestamptz NOT NULL,
    status      text NOT NULL,
    under_1d    bigint NOT NULL,
    d1_to_3d    bigint NOT NULL,
    d3_to_7d    bigint NOT NULL,
    d7_to_30d   bigint NOT NULL,
    over_30d    bigint NOT NULL
);

-- The first hour boundary at or after `t`.
CREATE FUNCTION report_hour_at_or_after(t timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT date_trunc('hour', t, 'UTC') + CASE WHEN t > date_trunc('hour', t, 'UTC') THEN interval '1 hour' ELSE interval '0' END
$$;

-- What one stretch adds (`sign` +1) or takes back (-1): per hour, per age bucket. Ages are whole
-- 24-hour days, as the report's `at - opened_at` compares them, in every time zone.
CREATE FUNCTION report_backlog_pieces(
    stretch_status text, opened timestamptz, entered timestamptz, ended timestamptz, sign integer)
RETURNS TABLE (hour timestamptz, status text, under_1d bigint, d1_to_3d bigint, d3_to_7d bigint, d7_to_30d bigint, over_30d bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.hour, stretch_status,
           coalesce(sum(e.change) FILTER (WHERE b.bucket = 1), 0), coalesce(sum(e.change) FILTER (WHERE b.bucket = 2), 0),
           coalesce(sum(e.change) FILTER (WHERE b.bucket = 3), 0), coalesce(sum(e.change) FILTER (WHERE b.bucket = 4), 0),
           coalesce(sum(e.change) FILTER (WHERE b.bucket = 5), 0)
    FROM (VALUES (1, NULL, interval '24 hours'), (2, interval '24 hours', interval '72 hours'),
                 (3, interval '72 hours', interval '168 hours'), (4, interval '168 hours', interval '720 hours'),
                 (5, interval '720 hours', NULL)) AS b(bucket, lo, hi)
    -- The stretch's part inside the bucket, [starts, stops): stops NULL for never.
    CROSS JOIN LATERAL (SELECT greatest(entered, opened + b.lo) AS starts,
                               CASE WHEN ended IS NULL THEN opened + b.hi
                                    WHEN b.hi IS NULL THEN ended
                                    ELSE least(ended, opened + b.hi) END AS stops) AS part
    CROSS JOIN LATERAL (VALUES (report_hour_at_or_after(part.starts), sign),
                               (report_hour_at_or_after(part.stops), -sign)) AS e(hour, change)
    WHERE stretch_status IN ('new', 'open', 'pending', 'on_hold')
      AND (part.stops IS NULL OR part.starts < part.stops)
      AND e.hour IS NOT NULL
    GROUP BY e.hour
$$;

CREATE FUNCTION ticket_status_periods_report_backlog() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO report_backlog_changes (hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d)
        SELECT p.*
        FROM tickets t, report_backlog_pieces(OLD.status, t.created_at, OLD.entered_at, OLD.left_at, -1) AS p
        WHERE t.id = OLD.ticket_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO report_backlog_changes (hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d)
        SELECT p.*
        FROM tickets t, report_backlog_pieces(NEW.status, t.created_at, NEW.entered_at, NEW.left_at, 1) AS p
        WHERE t.id = NEW.ticket_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_status_periods_report_backlog AFTER INSERT OR DELETE OR UPDATE OF status, entered_at, left_at, ticket_id
    ON ticket_status_periods FOR EACH ROW EXECUTE FUNCTION ticket_status_periods_report_backlog();

-- A ticket's opening time moves every age bucket of its stretches.
CREATE FUNCTION tickets_report_backlog() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_backlog_changes (hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d)
    SELECT p.*
    FROM ticket_status_periods s,
         LATERAL (SELECT * FROM report_backlog_pieces(s.status, OLD.created_at, s.entered_at, s.left_at, -1)
                  UNION ALL
                  SELECT * FROM report_backlog_pieces(s.status, NEW.created_at, s.entered_at, s.left_at, 1)) AS p
    WHERE s.ticket_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tickets_report_backlog AFTER UPDATE OF created_at ON tickets
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at) EXECUTE FUNCTION tickets_report_backlog();

-- Folds up to `batch` changes into the counts in one transaction; returns how many.
CREATE FUNCTION compact_report_backlog(batch integer DEFAULT 100000) RETURNS bigint
LANGUAGE sql AS $$
    WITH taken AS (
        DELETE FROM report_backlog_changes
        WHERE id IN (SELECT id FROM report_backlog_changes ORDER BY id LIMIT batch FOR UPDATE SKIP LOCKED)
        RETURNING hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d
    ), summed AS (
        SELECT hour, status, sum(under_1d) AS under_1d, sum(d1_to_3d) AS d1_to_3d, sum(d3_to_7d) AS d3_to_7d,
               sum(d7_to_30d) AS d7_to_30d, sum(over_30d) AS over_30d, count(*) AS changes
        FROM taken GROUP BY hour, status
    ), folded AS (
        INSERT INTO report_backlog_counts AS c (hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d)
        SELECT hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d FROM summed
        ON CONFLICT (hour, status) DO UPDATE SET
            under_1d = c.under_1d + excluded.under_1d, d1_to_3d = c.d1_to_3d + excluded.d1_to_3d,
            d3_to_7d = c.d3_to_7d + excluded.d3_to_7d, d7_to_30d = c.d7_to_30d + excluded.d7_to_30d,
            over_30d = c.over_30d + excluded.over_30d
    )
    SELECT coalesce(sum(changes), 0)::bigint FROM summed;
$$;

-- Everything again from the status history (after a bulk load with triggers off, or to repair).
CREATE FUNCTION rebuild_report_backlog() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE report_backlog_counts, report_backlog_changes IN EXCLUSIVE MODE;
    LOCK TABLE tickets, ticket_status_periods IN SHARE MODE;
    DELETE FROM report_backlog_changes;
    DELETE FROM report_backlog_counts;
    INSERT INTO report_backlog_counts (hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d)
    SELECT p.hour, p.status, sum(p.under_1d), sum(p.d1_to_3d), sum(p.d3_to_7d), sum(p.d7_to_30d), sum(p.over_30d)
    FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id,
         LATERAL report_backlog_pieces(s.status, t.created_at, s.entered_at, s.left_at, 1) AS p
    WHERE s.status IN ('new', 'open', 'pending', 'on_hold')
    GROUP BY p.hour, p.status;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

SELECT rebuild_report_backlog();
