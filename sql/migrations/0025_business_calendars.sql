-- Business calendars: when the team works, in its own time zone, so that SLA clocks and response-time
-- reports count only business time. A clock never counts a closed day: weekends (days without
-- hours), national holidays when the calendar observes them, and the shop's own closed days (年末年始).

CREATE TABLE business_calendars (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    -- An IANA zone name; checked against pg_timezone_names when written.
    time_zone          text NOT NULL DEFAULT 'Asia/Tokyo' CHECK (length(time_zone) BETWEEN 1 AND 64),
    -- Whose national holidays are closed days: 'jp', or 'none'.
    national_holidays  text NOT NULL DEFAULT 'jp' CHECK (national_holidays IN ('jp', 'none')),
    version            bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Opening hours per ISO weekday (1 = Monday … 7 = Sunday), in the calendar's zone; several rows on
-- one day are a split shift. `closes` may be 24:00 (open until midnight).
CREATE TABLE business_hours (
    calendar_id  uuid NOT NULL REFERENCES business_calendars (id) ON DELETE CASCADE,
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    opens        time NOT NULL,
    closes       time NOT NULL,
    CHECK (opens < closes),
    PRIMARY KEY (calendar_id, weekday, opens)
);

-- The shop's own closed days (年末年始, 棚卸し), whole days in the calendar's zone.
CREATE TABLE business_closed_days (
    calendar_id  uuid NOT NULL REFERENCES business_calendars (id) ON DELETE CASCADE,
    day          date NOT NULL,
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    PRIMARY KEY (calendar_id, day)
);

-- National holidays, shipped as data (内閣府「国民の祝日」, with substitute holidays 振替休日 and
-- the citizens' holiday 国民の休日). Extend with a new migration each year.
CREATE TABLE national_holidays (
    country  text NOT NULL,
    day      date NOT NULL,
    name     text NOT NULL,
    PRIMARY KEY (country, day)
);

INSERT INTO national_holidays (country, day, name) VALUES
    ('jp', '2025-01-01', '元日'), ('jp', '2025-01-13', '成人の日'), ('jp', '2025-02-11', '建国記念の日'),
    ('jp', '2025-02-23', '天皇誕生日'), ('jp', '2025-02-24', '振替休日'), ('jp', '2025-03-20', '春分の日'),
    ('jp', '2025-04-29', '昭和の日'), ('jp', '2025-05-03', '憲法記念日'), ('jp', '2025-05-04', 'みどりの日'),
    ('jp', '2025-05-05', 'こどもの日'), ('jp', '2025-05-06', '振替休日'), ('jp', '2025-07-21', '海の日'),
    ('jp', '2025-08-11', '山の日'), ('jp', '2025-09-15', '敬老の日'), ('jp', '2025-09-23', '秋分の日'),
    ('jp', '2025-10-13', 'スポーツの日'), ('jp', '2025-11-03', '文化の日'), ('jp', '2025-11-23', '勤労感謝の日'),
    ('jp', '2025-11-24', '振替休日'),
    ('jp', '2026-01-01', '元日'), ('jp', '2026-01-12', '成人の日'), ('jp', '2026-02-11', '建国記念の日'),
    ('jp', '2026-02-23', '天皇誕生日'), ('jp', '2026-03-20', '春分の日'), ('jp', '2026-04-29', '昭和の日'),
    ('jp', '2026-05-03', '憲法記念日'), ('jp', '2026-05-04', 'みどりの日'), ('jp', '2026-05-05', 'こどもの日'),
    ('jp', '2026-05-06', '振替休日'), ('jp', '2026-07-20', '海の日'), ('jp', '2026-08-11', '山の日'),
    ('jp', '2026-09-21', '敬老の日'), ('jp', '2026-09-22', '国民の休日'), ('jp', '2026-09-23', '秋分の日'),
    ('jp', '2026-10-12', 'スポーツの日'), ('jp', '2026-11-03', '文化の日'), ('jp', '2026-11-23', '勤労感謝の日'),
    ('jp', '2027-01-01', '元日'), ('jp', '2027-01-11', '成人の日'), ('jp', '2027-02-11', '建国記念の日'),
    ('jp', '2027-02-23', '天皇誕生日'), ('jp', '2027-03-21', '春分の日'), ('jp', '2027-03-22', '振替休日'),
    ('jp', '2027-04-29', '昭和の日'), ('jp', '2027-05-03', '憲法記念日'), ('jp', '2027-05-04', 'みどりの日'),
    ('jp', '2027-05-05', 'こどもの日'), ('jp', '2027-07-19', '海の日'), ('jp', '2027-08-11', '山の日'),
    ('jp', '2027-09-20', '敬老の日'), ('jp', '2027-09-23', '秋分の日'), ('jp', '2027-10-11', 'スポーツの日'),
    ('jp', '2027-11-03', '文化の日'), ('jp', '2027-11-23', '勤労感謝の日');

-- Every open interval of `calendar` that overlaps [from_time, to_time), as absolute times, in order.
-- The one place that turns weekly hours, holidays and closed days into time: business_seconds and
-- business_time_add below, the API, the views and the tests all go through it.
CREATE FUNCTION business_intervals(calendar uuid, from_time timestamptz, to_time timestamptz)
RETURNS TABLE (opens_at timestamptz, closes_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT (d.day + h.opens) AT TIME ZONE c.time_zone, (d.day + h.closes) AT TIME ZONE c.time_zone
    FROM business_calendars c
    CROSS JOIN LATERAL generate_series((from_time AT TIME ZONE c.time_zone)::date - 1,
                                       (to_time AT TIME ZONE c.time_zone)::date, interval '1 day') AS g(local_day)
    CROSS JOIN LATERAL (SELECT g.local_day::date AS day) d
    JOIN business_hours h ON h.calendar_id = c.id AND h.weekday = extract(isodow FROM d.day)
    WHERE c.id = calendar
      AND NOT EXISTS (SELECT 1 FROM national_holidays n WHERE n.country = c.national_holidays AND n.day = d.day)
      AND NOT EXISTS (SELECT 1 FROM business_closed_days x WHERE x.calendar_id = c.id AND x.day = d.day)
      AND (d.day + h.closes) AT TIME ZONE c.time_zone > from_time
      AND (d.day + h.opens) AT TIME ZONE c.time_zone < to_time
    ORDER BY 1
$$;

-- Business time between two instants, in seconds (0 when `to_time` is not after `from_time`).
CREATE FUNCTION business_seconds(calendar uuid, from_time timestamptz, to_time timestamptz)
RETURNS double precision
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(sum(extract(epoch FROM least(closes_at, to_time) - greatest(opens_at, from_time))), 0)::double precision
    FROM business_intervals(calendar, from_time, to_time)
    WHERE to_time > from_time
$$;

-- The instant `seconds` of business time after `from_time`: when a clock started then runs out.
-- Reads the calendar a month at a time, up to two years ahead; NULL if it has no hours in that time
-- (or any argument is NULL: a clock with no target never runs out).
CREATE FUNCTION business_time_add(calendar uuid, from_time timestamptz, seconds double precision)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    remaining double precision := greatest(seconds, 0);
    window_start timestamptz := from_time;
    slot record;
    length double precision;
BEGIN
    FOR month IN 1..24 LOOP
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

-- The calendar every team starts with: weekdays 9:00–18:00 Tokyo time, Japanese national holidays
-- and 年末年始 (12/29–1/3) closed. Supervisors edit it or add their own.
INSERT INTO business_calendars (id, name) VALUES ('00000000-0000-4000-8000-0000000ca1e0', '標準');
INSERT INTO business_hours (calendar_id, weekday, opens, closes)
SELECT '00000000-0000-4000-8000-0000000ca1e0', weekday, '09:00', '18:00' FROM generate_series(1, 5) AS weekday;
INSERT INTO business_closed_days (calendar_id, day, name)
SELECT '00000000-0000-4000-8000-0000000ca1e0', day::date, '年末年始'
FROM generate_series(date '2025-12-29', date '2027-01-03', interval '1 day') AS day
WHERE extract(month FROM day) = 12 AND extract(day FROM day) >= 29 OR extract(month FROM day) = 1 AND extract(day FROM day) <= 3;

INSERT INTO event_types (name, description) VALUES
    ('calendar.created', 'A supervisor added a business calendar.'),
    ('calendar.updated', 'A supervisor changed a business calendar (hours, zone, holidays or closed days).'),
    ('calendar.deleted', 'A supervisor removed a business calendar.');
