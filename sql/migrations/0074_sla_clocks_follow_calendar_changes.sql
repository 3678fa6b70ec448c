-- Due times follow the calendar and the targets they count in. A closed day added for tomorrow
-- (臨時休業, a typhoon) left every open ticket's due time on that day, so the whole queue breached
-- while the shop was shut; a target lengthened for the year-end rush applied to new tickets only.
-- Changing a calendar or a policy now sets the running clocks of the tickets counting in it again,
-- from each clock's start with the pauses already over added: what a priority change does
-- (`tickets_sla_clocks`), asked for by `reset_sla_clocks` through a transaction-local setting.
-- A first-response clock is set again from the customer's wait even when it began before the
-- ticket opened (a duplicate's wait a merge carried over): from the opening, a reset undid the merge.
-- Likewise the resolution clock from `resolution_since`, where a merge carried it (below).
-- Only clocks that run (tickets neither solved nor closed; a pending one's pause is counted when
-- it ends, as always): a solved ticket's resolution was judged when it was solved, and a closed one
-- is done.

-- Where the resolution clock runs from when not the opening (NULL): an earlier duplicate's opening when a
-- merge carried that duplicate's clock into this ticket (TicketWork+Merge). Set again, the clock
-- counts from here, so a reset or a new priority keeps the carried lateness instead of dropping it.
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS resolution_since timestamptz;

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

    -- Set when the ticket opens; recomputed from each clock's start when the targets or the calendar change, with
    -- the pauses already over added: pending stretches for every clock, solved ones too for the
    -- resolution clock.
    IF TG_OP = 'INSERT' OR NEW.priority IS DISTINCT FROM OLD.priority OR NEW.sla_policy_id IS DISTINCT FROM OLD.sla_policy_id
       OR current_setting('madoguchi.sla_reset', true) = 'on' THEN
        -- From the customer's wait, even one that began before this ticket opened: a duplicate's,
        -- carried over by a merge (migration 0072), which a reset must not lose.
        first_since := CASE WHEN NEW.first_responded_at IS NULL AND NEW.awaiting_reply_since IS NOT NULL
                            THEN NEW.awaiting_reply_since ELSE NEW.created_at END;
        paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, first_since) END;
        NEW.first_response_due_at := business_time_add(calendar, first_since, target.first_response_seconds + paused);
        NEW.first_response_warn_at := business_time_add(calendar, first_since, target.first_response_seconds * fraction + paused);
        paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, coalesce(NEW.resolution_since, NEW.created_at)) END;
        IF TG_OP = 'UPDATE' THEN
            paused := paused + coalesce((SELECT sum(business_seconds(calendar, greatest(s.entered_at, coalesce(NEW.resolution_since, NEW.created_at)), s.left_at))
                                         FROM ticket_status_periods s
                                         WHERE s.ticket_id = NEW.id AND s.status = 'solved' AND s.left_at > coalesce(NEW.resolution_since, NEW.created_at)), 0);
        END IF;
        NEW.resolution_due_at := business_time_add(calendar, coalesce(NEW.resolution_since, NEW.created_at), target.resolution_seconds + paused);
        NEW.resolution_warn_at := business_time_add(calendar, coalesce(NEW.resolution_since, NEW.created_at), target.resolution_seconds * fraction + paused);
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

-- Sets the running clocks of the tickets under `policies` again (see above), in id order after
-- `after`, at most `batch` of them (all when NULL); the last ticket set, NULL when none was left.
-- At about a millisecond a ticket, the service takes them a few hundred per transaction, so no
-- ticket's row stays locked (and out of the queue) for long. Listing `sla_policy_id` in the SET is
-- what fires the clocks' trigger (BEFORE UPDATE OF …).
CREATE OR REPLACE FUNCTION reset_sla_clocks(policies uuid[], after uuid DEFAULT NULL, batch integer DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    last uuid;
BEGIN
    PERFORM set_config('madoguchi.sla_reset', 'on', true);
    WITH chosen AS (
        SELECT id FROM tickets
        WHERE sla_policy_id = ANY (policies) AND status NOT IN ('solved', 'closed') AND (after IS NULL OR id > after)
        ORDER BY id
        LIMIT batch
    ), changed AS (
        UPDATE tickets t SET sla_policy_id = t.sla_policy_id, version = t.version + 1, updated_at = now()
        -- Again here: a ticket solved since it was chosen keeps the due time it was judged by.
        FROM chosen WHERE t.id = chosen.id AND t.status NOT IN ('solved', 'closed')
        RETURNING t.id
    )
    SELECT id INTO last FROM changed ORDER BY id DESC LIMIT 1;
    PERFORM set_config('madoguchi.sla_reset', 'off', true);
    RETURN last;
END
$$;
