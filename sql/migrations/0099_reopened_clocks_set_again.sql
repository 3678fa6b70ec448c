-- A solved ticket that reopens has its clocks set again from their start by the policy, priority and
-- calendar that hold now (0096's trigger; only the condition that recomputes changed). Found by a
-- review: while a ticket rests solved, a priority raised (normal → urgent), a move to a queue with
-- another policy, or a closed day added to its calendar passes it by (it keeps the due times it was
-- judged by, 0096), and nothing set them again when the customer wrote back and it reopened: an
-- urgent complaint read `ok` on a normal ticket's resolution due time, or fell due on the typhoon
-- day the shop had closed. 0096's comment said the reopening set them again; it did not.
-- The solved stretch ending now is not yet in ticket_status_periods (kept AFTER UPDATE), so the
-- recomputed resolution clock leaves it out and the block below that pushes it back by it adds it,
-- once, as before.
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
        -- The policy taken away from a ticket whose clocks run: nothing would move its due times
        -- again. The policy's deletion stops them itself (SLAPolicyStore.delete), but a ticket
        -- created into the policy while it was being deleted is cleared by the foreign key's
        -- ON DELETE SET NULL, and only here.
        IF TG_OP = 'UPDATE' AND OLD.sla_policy_id IS NOT NULL AND NEW.status NOT IN ('solved', 'closed') THEN
            NEW.first_response_due_at := NULL;
            NEW.first_response_warn_at := NULL;
            NEW.next_response_due_at := NULL;
            NEW.next_response_warn_at := NULL;
            NEW.resolution_due_at := NULL;
            NEW.resolution_warn_at := NULL;
            NEW.sla_paused_at := NULL;
            NEW.resolution_paused_at := NULL;
        END IF;
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
    IF (TG_OP = 'INSERT' OR NEW.priority IS DISTINCT FROM OLD.priority OR NEW.sla_policy_id IS DISTINCT FROM OLD.sla_policy_id
        OR current_setting('madoguchi.sla_reset', true) = 'on'
        -- Reopened: set again by what holds now (0099).
        OR OLD.status IN ('solved', 'closed') AND NEW.status NOT IN ('solved', 'closed'))
       -- A solved or closed ticket keeps the due times it was judged by (a priority or queue set on
       -- it afterwards, for the records, moved them, or cleared them where the new target had none).
       AND (TG_OP = 'INSERT' OR NEW.status NOT IN ('solved', 'closed')) THEN
        -- From the customer's wait, even one that began before this ticket opened: a duplicate's,
        -- carried over by a merge (migration 0072), which a reset must not lose.
        first_since := CASE WHEN NEW.first_responded_at IS NULL AND NEW.awaiting_reply_since IS NOT NULL
                            THEN NEW.awaiting_reply_since ELSE NEW.created_at END;
        -- Only while nobody has answered: the first response was judged against the due time then
        -- (the SLA report keeps it); set again, the ticket showed a late answer as on time.
        IF TG_OP = 'INSERT' OR NEW.first_responded_at IS NULL THEN
            paused := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE ticket_paused_seconds(calendar, NEW.id, first_since) END;
            NEW.first_response_due_at := business_time_add(calendar, first_since, target.first_response_seconds + paused);
            NEW.first_response_warn_at := business_time_add(calendar, first_since, target.first_response_seconds * fraction + paused);
        END IF;
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
        IF NEW.first_responded_at IS NULL THEN
            NEW.first_response_due_at := business_time_add(calendar, NEW.first_response_due_at, paused);
            NEW.first_response_warn_at := business_time_add(calendar, NEW.first_response_warn_at, paused);
        END IF;
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
    -- A ticket that went pending or solved while it had no policy (none was the default; moved
    -- since into a queue with one) has rested from that moment: its clocks start paused, and
    -- waking pushes them back by the whole rest, as if it had had the policy then.
    IF TG_OP = 'UPDATE' AND NEW.status = 'pending' AND NEW.sla_paused_at IS NULL THEN
        NEW.sla_paused_at := coalesce((SELECT max(s.entered_at) FROM ticket_status_periods s
                                       WHERE s.ticket_id = NEW.id AND s.status = 'pending' AND s.left_at IS NULL), now());
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status = 'solved' AND NEW.resolution_paused_at IS NULL THEN
        NEW.resolution_paused_at := coalesce((SELECT max(s.entered_at) FROM ticket_status_periods s
                                              WHERE s.ticket_id = NEW.id AND s.status = 'solved' AND s.left_at IS NULL), now());
    END IF;
    RETURN NEW;
END
$$;
