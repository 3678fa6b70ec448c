-- Three mistakes in how the clocks of migration 0026 met a pending stretch, and one in how the SLA
-- rollup (migration 0038) heard of it.
--
-- 1. A customer writing on a pending ticket both ends the pause and starts the next-response clock,
--    in one UPDATE. The clock was started first and then pushed back by the whole pause, which
--    ended before it began: pending Monday 10:00 to Wednesday 10:00 made a 4-hour next response due
--    Friday 14:00, not Wednesday 14:00, and the response counted as in time. A pause now pushes
--    back only the clocks that ran before it; a clock started by the same change starts after it.
-- 2. A change of priority or policy recomputed every clock from its start and forgot every earlier
--    pause: a ticket pending Monday to Wednesday whose priority was raised on Thursday was due
--    again on Wednesday, breached at once. The recomputed clocks now add the business time of the
--    pending stretches since they started (`ticket_status_periods`).
-- 3. `business_time_add(t, 0)` at a closing time (a due time often is one) returned the next
--    opening: a pause of no business time (pending 19:00–21:00) moved a clock due at 18:00 to 09:00
--    the next working day. No time added is now the instant itself.
-- 4. The rollup's trigger listened for `UPDATE OF resolution_due_at`, but PostgreSQL names only the
--    columns an UPDATE sets, and only the clock trigger above sets that one: a stored period kept a
--    solve "met" after the ticket's resolution due time moved. It now listens to the columns that
--    move the clock, and still acts only when the due time (or channel, or opening) changed.

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

-- Business seconds a ticket spent pending, in the stretches that ended after `since` (counted from
-- `since` when one began before it). The stretch still running is not here: it is `sla_paused_at`,
-- counted when it ends.
CREATE FUNCTION ticket_paused_seconds(calendar uuid, ticket uuid, since timestamptz)
RETURNS double precision
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(sum(business_seconds(calendar, greatest(s.entered_at, since), s.left_at)), 0)::double precision
    FROM ticket_status_periods s
    WHERE s.ticket_id = ticket AND s.status = 'pending' AND s.left_at > since
$$;

CREATE OR REPLACE FUNCTION tickets_sla_clocks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    calendar uuid;
    fraction double precision;
    target sla_targets%ROWTYPE;
    paused double precision;
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
    -- the pending stretches already over added.
    IF TG_OP = 'INSERT' OR NEW.priority IS DISTINCT FROM OLD.priority OR NEW.sla_policy_id IS DISTINCT FROM OLD.sla_policy_id THEN
        paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, NEW.created_at) END;
        NEW.first_response_due_at := business_time_add(calendar, NEW.created_at, target.first_response_seconds + paused);
        NEW.first_response_warn_at := business_time_add(calendar, NEW.created_at, target.first_response_seconds * fraction + paused);
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

    -- ...and only then does the next-response clock stop (nobody waits) or start (the customer waits
    -- again after our answer), so a clock the same change starts is never pushed back.
    IF TG_OP = 'UPDATE' THEN
        IF NEW.awaiting_reply_since IS NULL THEN
            NEW.next_response_due_at := NULL;
            NEW.next_response_warn_at := NULL;
        ELSIF OLD.awaiting_reply_since IS NULL AND NEW.first_responded_at IS NOT NULL THEN
            NEW.next_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds);
            NEW.next_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds * fraction);
        END IF;
    END IF;

    IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
        NEW.sla_paused_at := now();
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER tickets_report_response_changes ON tickets;
CREATE TRIGGER tickets_report_response_changes
    AFTER UPDATE OF channel, created_at, resolution_due_at, priority, status, awaiting_reply_since, sla_policy_id ON tickets
    FOR EACH ROW WHEN (OLD.channel IS DISTINCT FROM NEW.channel OR OLD.created_at IS DISTINCT FROM NEW.created_at
                       OR OLD.resolution_due_at IS DISTINCT FROM NEW.resolution_due_at)
    EXECUTE FUNCTION tickets_report_response_changes();
