-- Two mistakes in business time, found by a review of the SLA clocks (a third, in the next-response
-- clock after a failed delivery, is in 0063's trigger).
--
-- 1. business_intervals stepped through local days with a timestamptz series, which runs in the
--    session's time zone: where that zone moves its clocks at midnight (Africa/Cairo,
--    America/Santiago), a day was skipped, and business_seconds and business_time_add disagreed
--    (Friday 17:55 to Monday 09:10 was 5 business minutes, not 15). Days are now counted as dates.
-- 2. business_time_add looked two years ahead: a target of more than about 4,400 business hours on
--    a weekday calendar (the API takes a year's worth) got no due time, so it never warned or
--    breached. It now looks ten years ahead; a calendar too sparse for a target even then still
--    gets none.

CREATE OR REPLACE FUNCTION business_intervals(calendar uuid, from_time timestamptz, to_time timestamptz)
RETURNS TABLE (opens_at timestamptz, closes_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT (d.day + h.opens) AT TIME ZONE c.time_zone, (d.day + h.closes) AT TIME ZONE c.time_zone
    FROM business_calendars c
    CROSS JOIN LATERAL (SELECT (from_time AT TIME ZONE c.time_zone)::date - 1 AS first_day,
                               (to_time AT TIME ZONE c.time_zone)::date AS last_day) AS span
    -- Dates, not a timestamptz series (which would step in the session's time zone).
    CROSS JOIN LATERAL generate_series(0, span.last_day - span.first_day) AS g(offset_days)
    CROSS JOIN LATERAL (SELECT span.first_day + g.offset_days AS day) d
    JOIN business_hours h ON h.calendar_id = c.id AND h.weekday = extract(isodow FROM d.day)
    WHERE c.id = calendar
      AND NOT EXISTS (SELECT 1 FROM national_holidays n WHERE n.country = c.national_holidays AND n.day = d.day)
      AND NOT EXISTS (SELECT 1 FROM business_closed_days x WHERE x.calendar_id = c.id AND x.day = d.day)
      AND (d.day + h.closes) AT TIME ZONE c.time_zone > from_time
      AND (d.day + h.opens) AT TIME ZONE c.time_zone < to_time
    ORDER BY 1
$$;

-- The instant `seconds` of business time after `from_time`: when a clock started then runs out.
-- Reads the calendar a month at a time, up to ten years ahead; NULL if it has not that much business
-- time in them (or any argument is NULL: a clock with no target never runs out).
CREATE OR REPLACE FUNCTION business_time_add(calendar uuid, from_time timestamptz, seconds double precision)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    remaining double precision := greatest(seconds, 0);
    window_start timestamptz := from_time;
    slot record;
    length double precision;
BEGIN
    IF remaining = 0 THEN
        RETURN from_time;
    END IF;
    FOR month IN 1..120 LOOP
        FOR slot IN SELECT greatest(opens_at, window_start) AS opens_at, least(closes_at, window_start + interval '31 days') AS closes_at
                    FROM business_intervals(calendar, window_start, window_start + interval '31 days') LOOP
            length := extract(epoch FROM slot.closes_at - slot.opens_at);
            IF remaining <= length THEN
                RETURN slot.opens_at + make_interval(secs => remaining);
            END IF;
            remaining := remaining - length;
        END LOOP;
        window_start := window_start + interval '31 days';
    END LOOP;
    RETURN NULL;
END
$$;

