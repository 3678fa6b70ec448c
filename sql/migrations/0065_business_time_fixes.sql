-- Three mistakes in business time, found by a review of the SLA clocks.
--
-- 1. business_intervals stepped through local days with a timestamptz series, which runs in the
--    session's time zone: where that zone moves its clocks at midnight (Africa/Cairo,
--    America/Santiago), a day was skipped, and business_seconds and business_time_add disagreed
--    (Friday 17:55 to Monday 09:10 was 5 business minutes, not 15). Days are now counted as dates.
-- 2. business_time_add looked two years ahead: a target of more than about 4,400 business hours on
--    a weekday calendar (the API takes a year's worth) got no due time, so it never warned or
--    breached. It now looks ten years ahead; a calendar too sparse for a target even then still
--    gets none.
-- 3. A failed delivery makes the customer wait again from their last message; the next-response
--    clock started there counted the time the ticket had spent pending since, which the response's
--    own business time leaves out: a response well within its target was judged a breach. The clock
--    now leaves it out too.

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

CREATE OR REPLACE FUNCTION tickets_sla_clocks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    calendar uuid;
    fraction double precision;
    target sla_targets%ROWTYPE;
    paused double precision;
    first_since timestamptz;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.sla_policy_id IS NULL THEN
        NEW.sla_policy_id := (SELECT id FROM sla_policies WHERE is_default);
    END IF;
    IF NEW.sla_policy_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT p.calendar_id, p.warning_fraction INTO calendar, fraction FROM sla_policies p WHERE p.id = NEW.sla_policy_id;
    SELECT * INTO target FROM sla_targets s
    WHERE s.policy_id = NEW.sla_policy_id AND s.priority = NEW.priority AND (s.channel = NEW.channel OR s.channel IS NULL)
    ORDER BY s.channel NULLS LAST
    LIMIT 1;

    -- Set when the ticket opens; recomputed from each clock's start when the targets change, with
    -- the pauses already over added: pending stretches for every clock, solved ones too for the
    -- resolution clock.
    IF TG_OP = 'INSERT' OR NEW.priority IS DISTINCT FROM OLD.priority OR NEW.sla_policy_id IS DISTINCT FROM OLD.sla_policy_id THEN
        first_since := CASE WHEN NEW.first_responded_at IS NULL AND NEW.awaiting_reply_since IS NOT NULL
                            THEN greatest(NEW.created_at, NEW.awaiting_reply_since) ELSE NEW.created_at END;
        paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, first_since) END;
        NEW.first_response_due_at := business_time_add(calendar, first_since, target.first_response_seconds + paused);
        NEW.first_response_warn_at := business_time_add(calendar, first_since, target.first_response_seconds * fraction + paused);
        paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, NEW.created_at) END;
        IF TG_OP = 'UPDATE' THEN
            paused := paused + coalesce((SELECT sum(business_seconds(calendar, greatest(s.entered_at, NEW.created_at), s.left_at))
                                         FROM ticket_status_periods s
                                         WHERE s.ticket_id = NEW.id AND s.status = 'solved' AND s.left_at > NEW.created_at), 0);
        END IF;
        NEW.resolution_due_at := business_time_add(calendar, NEW.created_at, target.resolution_seconds + paused);
        NEW.resolution_warn_at := business_time_add(calendar, NEW.created_at, target.resolution_seconds * fraction + paused);
        IF NEW.awaiting_reply_since IS NOT NULL AND NEW.first_responded_at IS NOT NULL THEN
            paused := ticket_paused_seconds(calendar, NEW.id, NEW.awaiting_reply_since);
            NEW.next_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds + paused);
            NEW.next_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds * fraction + paused);
        END IF;
    END IF;

    -- A pause ending pushes back the clocks that ran before it...
    IF TG_OP = 'UPDATE' AND NEW.status <> 'pending' AND OLD.sla_paused_at IS NOT NULL THEN
        paused := business_seconds(calendar, OLD.sla_paused_at, now());
        NEW.first_response_due_at := business_time_add(calendar, NEW.first_response_due_at, paused);
        NEW.first_response_warn_at := business_time_add(calendar, NEW.first_response_warn_at, paused);
        NEW.next_response_due_at := business_time_add(calendar, NEW.next_response_due_at, paused);
        NEW.next_response_warn_at := business_time_add(calendar, NEW.next_response_warn_at, paused);
        NEW.resolution_due_at := business_time_add(calendar, NEW.resolution_due_at, paused);
        NEW.resolution_warn_at := business_time_add(calendar, NEW.resolution_warn_at, paused);
        NEW.sla_paused_at := NULL;
    END IF;
    -- ...and a solved stretch ending (the ticket reopened) pushes back the resolution clock.
    IF TG_OP = 'UPDATE' AND NEW.status NOT IN ('solved', 'closed') AND OLD.resolution_paused_at IS NOT NULL THEN
        paused := business_seconds(calendar, OLD.resolution_paused_at, now());
        NEW.resolution_due_at := business_time_add(calendar, NEW.resolution_due_at, paused);
        NEW.resolution_warn_at := business_time_add(calendar, NEW.resolution_warn_at, paused);
        NEW.resolution_paused_at := NULL;
    END IF;

    -- Only then does the next-response clock stop (nobody waits) or start (the customer waits
    -- again after our answer), so a clock the same change starts is never pushed back.
    IF TG_OP = 'UPDATE' THEN
        IF NEW.awaiting_reply_since IS NULL THEN
            NEW.next_response_due_at := NULL;
            NEW.next_response_warn_at := NULL;
        ELSIF OLD.awaiting_reply_since IS NULL AND NEW.first_responded_at IS NOT NULL THEN
            -- A wait that began earlier (a failed delivery: since the customer's last message) leaves
            -- out the time the ticket spent pending since, as the response's business time does.
            paused := 0;
            IF NEW.awaiting_reply_since < now() THEN
                paused := ticket_paused_seconds(calendar, NEW.id, NEW.awaiting_reply_since)
                    + CASE WHEN OLD.sla_paused_at IS NOT NULL AND NEW.status <> 'pending'
                           THEN business_seconds(calendar, greatest(OLD.sla_paused_at, NEW.awaiting_reply_since), now()) ELSE 0 END;
            END IF;
            NEW.next_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds + paused);
            NEW.next_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds * fraction + paused);
        ELSIF OLD.awaiting_reply_since IS NULL THEN
            -- Never answered, and the wait had ended without a reply (対応不要): the customer's first
            -- answer is owed from now, not from the ticket's opening.
            NEW.first_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.first_response_seconds);
            NEW.first_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.first_response_seconds * fraction);
        END IF;
    END IF;

    -- A ticket inserted pending or solved (an import) has rested since it opened.
    IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
        NEW.sla_paused_at := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE now() END;
    END IF;
    IF NEW.status = 'solved' AND (TG_OP = 'INSERT' OR OLD.status <> 'solved') THEN
        NEW.resolution_paused_at := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE now() END;
    END IF;
    RETURN NEW;
END
$$;
