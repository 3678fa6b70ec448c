-- Four mistakes in the resolution clock and in business time, found by a review of the SLA reports.
--
-- 1. A solve was judged against the ticket's resolution due time as it is now, not as it was when
--    the ticket was solved: a later pause (or a lower priority) moved the due time, and a solve
--    that had been 18 hours late turned "met" in every report. Each solved stretch now keeps the
--    due time in force when it began (`ticket_status_periods.resolution_due_at`). Solves from
--    before this migration get the ticket's present due time, the best there is.
-- 2. The resolution clock ran while the ticket was solved: reopened by a customer's question three
--    days later, a ticket was breached at once. Solved now pauses the resolution clock as pending
--    pauses every clock (`tickets.resolution_paused_at`); reopening pushes it back by the business
--    time spent solved, and a recomputation (a new priority or policy) adds the solved stretches
--    that are over, as it adds the pending ones.
-- 3. Business time in the response-time reports counted the time the ticket spent pending (and,
--    for a resolution, solved): 29 business hours for a ticket whose SLA clock used two. Facts now
--    leave those stretches out, as the clocks do; the facts already written are corrected (their
--    triggers tell the rollup, which recomputes the periods they fall in).
-- 4. (views) A resolution clock still running past its due time was no breach in any report,
--    though the ticket's `sla_state` said breached: `report_sla_clock_running` has it now. A
--    ticket closed without being solved ends its resolution clock there, judged like a solve (or
--    closing a ticket past due would make its breach vanish).
-- 5. A ticket inserted already pending or solved (an import) started its pause at the insert, not
--    at its opening.

-- Business seconds `ticket` spent in one of `statuses` between two instants, on `calendar`.
CREATE OR REPLACE FUNCTION ticket_stretch_seconds(calendar uuid, ticket uuid, statuses text[], from_time timestamptz, to_time timestamptz)
RETURNS double precision
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(sum(business_seconds(calendar, greatest(s.entered_at, from_time), least(coalesce(s.left_at, to_time), to_time))), 0)::double precision
    FROM ticket_status_periods s
    WHERE s.ticket_id = ticket AND s.status = ANY (statuses) AND s.entered_at < to_time AND coalesce(s.left_at, to_time) > from_time
$$;

-- The calendar a ticket's clocks and business times run on: its policy's, else the standard one.
CREATE OR REPLACE FUNCTION ticket_calendar(policy uuid)
RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT p.calendar_id FROM sla_policies p WHERE p.id = policy), '00000000-0000-4000-8000-0000000ca1e0'::uuid)
$$;

ALTER TABLE ticket_status_periods ADD COLUMN IF NOT EXISTS resolution_due_at timestamptz;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS resolution_paused_at timestamptz;

-- Resolution clocks still running, by due time: the few past due among every open ticket.
CREATE INDEX IF NOT EXISTS tickets_resolution_running ON tickets (resolution_due_at)
    WHERE resolution_due_at IS NOT NULL AND status NOT IN ('solved', 'closed');

CREATE OR REPLACE FUNCTION tickets_status_periods() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    entered timestamptz := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE now() END;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
            RETURN NULL;
        END IF;
        UPDATE ticket_status_periods SET left_at = greatest(now(), entered_at) WHERE ticket_id = NEW.id AND left_at IS NULL;
    END IF;
    -- A solve: the business time since opening, without the stretches pending or solved before
    -- (the stretch just left is closed above), and the due time it is judged against.
    INSERT INTO ticket_status_periods (ticket_id, status, entered_at, business_seconds_since_opened, resolution_due_at)
    VALUES (NEW.id, NEW.status, entered,
            CASE WHEN NEW.status = 'solved' THEN
                business_seconds(ticket_calendar(NEW.sla_policy_id), NEW.created_at, entered)
                - ticket_stretch_seconds(ticket_calendar(NEW.sla_policy_id), NEW.id, ARRAY['pending', 'solved'], NEW.created_at, entered)
            END,
            -- A close straight from another status ends the resolution clock as a solve does.
            CASE WHEN NEW.status = 'solved' OR (NEW.status = 'closed' AND (TG_OP = 'INSERT' OR OLD.status <> 'solved'))
                 THEN NEW.resolution_due_at END);
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
        paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, NEW.created_at) END;
        NEW.first_response_due_at := business_time_add(calendar, NEW.created_at, target.first_response_seconds + paused);
        NEW.first_response_warn_at := business_time_add(calendar, NEW.created_at, target.first_response_seconds * fraction + paused);
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
            NEW.next_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds);
            NEW.next_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds * fraction);
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

-- Solves and responses written before this migration. Their triggers tell the rollup
-- (migration 0038), which recomputes the periods they fall in.
UPDATE ticket_status_periods s SET resolution_due_at = t.resolution_due_at
FROM tickets t
WHERE t.id = s.ticket_id AND s.status = 'solved' AND s.resolution_due_at IS NULL AND t.resolution_due_at IS NOT NULL;

-- A solve's facts, and a close straight from another status (its due time set): the rollup hears
-- of them changing.
CREATE OR REPLACE FUNCTION ticket_status_periods_report_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND (OLD.status = 'solved' OR OLD.resolution_due_at IS NOT NULL) THEN
        INSERT INTO report_response_changes (at) VALUES (OLD.entered_at);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (NEW.status = 'solved' OR NEW.resolution_due_at IS NOT NULL) THEN
        INSERT INTO report_response_changes (at) VALUES (NEW.entered_at);
    END IF;
    RETURN NULL;
END
$$;

-- A ticket's resolution due time no longer judges past solves (each keeps its own): its changing
-- (every reopen, every priority change) leaves the rollup alone. Channel and opening still count.
DROP TRIGGER IF EXISTS tickets_report_response_changes ON tickets;
CREATE TRIGGER tickets_report_response_changes
    AFTER UPDATE OF channel, created_at ON tickets
    FOR EACH ROW WHEN (OLD.channel IS DISTINCT FROM NEW.channel OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION tickets_report_response_changes();

-- A solve's due time is one of its facts now: the rollup hears of it changing. (Not of the line
-- above: the rollup computed those solves against the very same due times.)
DROP TRIGGER IF EXISTS ticket_status_periods_report_changes ON ticket_status_periods;
CREATE TRIGGER ticket_status_periods_report_changes
    AFTER INSERT OR DELETE OR UPDATE OF status, entered_at, ticket_id, business_seconds_since_opened, resolution_due_at
    ON ticket_status_periods FOR EACH ROW EXECUTE FUNCTION ticket_status_periods_report_changes();

UPDATE ticket_status_periods s
SET business_seconds_since_opened = business_seconds(ticket_calendar(t.sla_policy_id), t.created_at, s.entered_at)
    - ticket_stretch_seconds(ticket_calendar(t.sla_policy_id), t.id, ARRAY['pending', 'solved'], t.created_at, s.entered_at)
FROM tickets t
WHERE t.id = s.ticket_id AND s.status = 'solved'
  -- Rewritten (and the rollup told) only when the figure changes: a second run changes nothing.
  AND s.business_seconds_since_opened IS DISTINCT FROM business_seconds(ticket_calendar(t.sla_policy_id), t.created_at, s.entered_at)
      - ticket_stretch_seconds(ticket_calendar(t.sla_policy_id), t.id, ARRAY['pending', 'solved'], t.created_at, s.entered_at)
  AND EXISTS (SELECT 1 FROM ticket_status_periods p
              WHERE p.ticket_id = s.ticket_id AND p.status IN ('pending', 'solved') AND p.entered_at < s.entered_at);

UPDATE ticket_responses r
SET business_seconds = business_seconds(ticket_calendar(t.sla_policy_id), r.waited_since, r.responded_at)
    - ticket_stretch_seconds(ticket_calendar(t.sla_policy_id), t.id, ARRAY['pending'], r.waited_since, r.responded_at)
FROM tickets t
WHERE t.id = r.ticket_id
  AND r.business_seconds IS DISTINCT FROM business_seconds(ticket_calendar(t.sla_policy_id), r.waited_since, r.responded_at)
      - ticket_stretch_seconds(ticket_calendar(t.sla_policy_id), t.id, ARRAY['pending'], r.waited_since, r.responded_at)
  AND EXISTS (SELECT 1 FROM ticket_status_periods p
              WHERE p.ticket_id = r.ticket_id AND p.status = 'pending' AND p.entered_at < r.responded_at
                AND coalesce(p.left_at, r.responded_at) > r.waited_since);

-- Tickets solved now: their resolution clock is paused since they were solved.
UPDATE tickets t SET resolution_paused_at = s.entered_at
FROM ticket_status_periods s
WHERE s.ticket_id = t.id AND s.left_at IS NULL AND s.status = 'solved' AND t.status = 'solved' AND t.resolution_paused_at IS NULL;

-- Resolution clocks that ended late (a solve, or a close straight from another status), in time
-- order: the page of breaches reads them so, as it reads responses (migration 0041). Built after
-- the backfills above, whose rows it would otherwise have had to follow.
CREATE INDEX IF NOT EXISTS ticket_status_periods_late_solves ON ticket_status_periods (entered_at)
    WHERE status IN ('solved', 'closed') AND entered_at > resolution_due_at;
