-- A calendar that opens in the hour the clocks repeat when they go back (America/New_York open
-- 01:00–09:00 on 2026-11-01) lost that hour: `local AT TIME ZONE zone` reads a repeated local time
-- as the second, later instant, so the day held 8 business hours, not 9, and a 30-minute target
-- started at 05:00Z fell due at 06:30Z, not 05:30Z. Openings and closings now read as the first
-- instant the local clock shows them, as the reports read a period's start. Both alike, so that a
-- day closing at 24:00 still ends where the next one opening at 00:00 begins (read differently, a
-- desk open round the clock in a zone that repeats midnight's hour would count that hour twice).
-- Japan's calendars never change clocks.
CREATE OR REPLACE FUNCTION business_intervals(calendar uuid, from_time timestamptz, to_time timestamptz)
RETURNS TABLE (opens_at timestamptz, closes_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT o.opens_at, o.closes_at
    FROM business_calendars c
    CROSS JOIN LATERAL (SELECT (from_time AT TIME ZONE c.time_zone)::date - 1 AS first_day,
                               (to_time AT TIME ZONE c.time_zone)::date AS last_day) AS span
    -- Dates, not a timestamptz series (which would step in the session's time zone).
    CROSS JOIN LATERAL generate_series(0, span.last_day - span.first_day) AS g(offset_days)
    CROSS JOIN LATERAL (SELECT span.first_day + g.offset_days AS day) d
    JOIN business_hours h ON h.calendar_id = c.id AND h.weekday = extract(isodow FROM d.day)
    CROSS JOIN LATERAL (
        SELECT least((d.day + h.opens) AT TIME ZONE c.time_zone,
                     (d.day + h.opens - interval '1 hour') AT TIME ZONE c.time_zone + interval '1 hour') AS opens_at,
               least((d.day + h.closes) AT TIME ZONE c.time_zone,
                     (d.day + h.closes - interval '1 hour') AT TIME ZONE c.time_zone + interval '1 hour') AS closes_at
    ) o
    WHERE c.id = calendar
      AND NOT EXISTS (SELECT 1 FROM national_holidays n WHERE n.country = c.national_holidays AND n.day = d.day)
      AND NOT EXISTS (SELECT 1 FROM business_closed_days x WHERE x.calendar_id = c.id AND x.day = d.day)
      AND o.closes_at > from_time
      AND o.opens_at < to_time
    ORDER BY 1
$$;
