-- SLA clocks and a policy that comes or goes while a ticket rests or is being created (0074's
-- trigger, with two cases added; the rest of its body is unchanged):
-- - A ticket that went pending (or solved) with no policy, given one later (moved to a queue with a
--   policy; no default existed), ran its clock through the pause: it showed breached at once, and
--   waking pushed nothing back. It now rests from when it went pending or solved.
-- - A ticket created into a policy while the policy was being deleted kept due times no policy
--   would move again (the delete stops the tickets it sees; the foreign key's SET NULL reached this
--   one only). Losing its policy now stops an open ticket's clocks here too.

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
