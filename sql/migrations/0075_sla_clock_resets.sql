-- A reset of running SLA clocks (migration 0074) is recorded in the transaction that changes the
-- calendar or the policy, and runs from that record until its last ticket is set. Run only by the
-- request after its change committed, a reset cut short (the process stopped, the database went
-- away between two batches) left the tickets after the last batch counting in the old calendar
-- until someone saved the same change again. Now whoever finds a reset unfinished carries it on:
-- the request that asked for it, else any `serve` or `worker` process (SLAClockResetWorker).
--
-- One row per calendar or policy: a second change while the first one's reset runs starts that
-- reset again from the first ticket, so every ticket is set at least once after the last change.
-- (A policy deleted while a reset of its tickets runs takes the reset's row first, then its
-- tickets: the order a batch takes them in.)
CREATE TABLE IF NOT EXISTS sla_clock_resets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id    uuid UNIQUE REFERENCES sla_policies (id) ON DELETE CASCADE,
    calendar_id  uuid UNIQUE REFERENCES business_calendars (id) ON DELETE CASCADE,
    -- The last ticket set so far (tickets go in id order); NULL: none yet.
    after        uuid,
    requested_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((policy_id IS NULL) <> (calendar_id IS NULL))
);

-- One due time's change as a `ticket.updated` event names it ({} when it did not move), in the
-- API's form: UTC, whole seconds (a move within the second is no move), a missing time null.
CREATE OR REPLACE FUNCTION sla_due_change(field text, before timestamptz, after timestamptz) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN date_trunc('second', before) IS NOT DISTINCT FROM date_trunc('second', after) THEN '{}'::jsonb
                ELSE jsonb_build_object(field, jsonb_build_object(
                    'from', to_char(before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                    'to', to_char(after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
           END
$$;

-- Sets the next `batch` running clocks under `policies` after ticket `after`, as 0074's did;
-- `last`: the last ticket it looked at (NULL: none was left); `announced`: the events it wrote.
-- Each ticket whose due times moved gets a `ticket.updated` event naming them, so a dashboard
-- following the feed recolours it. A ticket solved (or given another policy) since it was chosen is
-- passed over but still counts as looked at: a batch whose every ticket was solved meanwhile no
-- longer ended the reset early.
-- Locks, in the order a customer merge takes them (customers, then their tickets): the batch's
-- customers first (the events' foreign keys share-lock them; taken after the tickets, a merge of one
-- of them deadlocked with the batch), then its tickets in id order (two resets never deadlock).
-- The batch is chosen once, so both locks are of the same tickets.
DROP FUNCTION IF EXISTS reset_sla_clocks(uuid[], uuid, integer);
CREATE FUNCTION reset_sla_clocks(policies uuid[], after uuid DEFAULT NULL, batch integer DEFAULT NULL,
                                 OUT last uuid, OUT announced integer)
LANGUAGE plpgsql AS $$
DECLARE
    chosen uuid[];
BEGIN
    SELECT array_agg(c.id ORDER BY c.id) INTO chosen
    FROM (SELECT id FROM tickets
          WHERE sla_policy_id = ANY (policies) AND status NOT IN ('solved', 'closed') AND (after IS NULL OR id > after)
          ORDER BY id
          LIMIT batch) AS c;
    last := chosen[cardinality(chosen)];
    announced := 0;
    IF last IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM customers
    WHERE id IN (SELECT customer_id FROM tickets WHERE id = ANY (chosen))
    ORDER BY id
    FOR KEY SHARE;
    PERFORM set_config('madoguchi.sla_reset', 'on', true);
    WITH locked AS MATERIALIZED (
        -- Read under the lock: the due times the event reports as before are the ones replaced.
        SELECT t.id, t.first_response_due_at, t.next_response_due_at, t.resolution_due_at
        FROM tickets t
        WHERE t.id = ANY (chosen) AND t.status NOT IN ('solved', 'closed') AND t.sla_policy_id = ANY (policies)
        ORDER BY t.id
        FOR UPDATE
    ), changed AS (
        UPDATE tickets t SET sla_policy_id = t.sla_policy_id, version = t.version + 1, updated_at = now()
        FROM locked WHERE t.id = locked.id
        RETURNING t.id, t.customer_id, t.version,
                  sla_due_change('first_response_due_at', locked.first_response_due_at, t.first_response_due_at)
                  || sla_due_change('next_response_due_at', locked.next_response_due_at, t.next_response_due_at)
                  || sla_due_change('resolution_due_at', locked.resolution_due_at, t.resolution_due_at) AS changes
    ), written_events AS (
        -- Only for a ticket whose due times moved (sla_due_change decides, to the second).
        INSERT INTO events (type, ticket_id, customer_id, data)
        SELECT 'ticket.updated', c.id, c.customer_id, jsonb_build_object('changes', c.changes, 'version', c.version)
        FROM changed c
        WHERE c.changes <> '{}'::jsonb
        ORDER BY c.id
        RETURNING 1
    )
    SELECT count(*) INTO announced FROM written_events;
    PERFORM set_config('madoguchi.sla_reset', 'off', true);
END
$$;

-- Asks for a reset of the clocks counting in a calendar or under a policy (exactly one given), in
-- the caller's transaction; a reset already asked for starts again from the first ticket. Returns
-- its id, for `run_sla_clock_reset`.
CREATE OR REPLACE FUNCTION request_sla_clock_reset(policy uuid, calendar uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    asked bigint;
BEGIN
    IF policy IS NOT NULL THEN
        INSERT INTO sla_clock_resets (policy_id) VALUES (policy)
        ON CONFLICT (policy_id) DO UPDATE SET after = NULL, requested_at = now()
        RETURNING id INTO asked;
    ELSE
        INSERT INTO sla_clock_resets (calendar_id) VALUES (calendar)
        ON CONFLICT (calendar_id) DO UPDATE SET after = NULL, requested_at = now()
        RETURNING id INTO asked;
    END IF;
    RETURN asked;
END
$$;

-- Carries reset `reset` on by one batch, in the caller's transaction (waiting for whoever runs its
-- batch now). `taken`: it was still there; `finished`: its last ticket is set, and its row gone;
-- `announced`: the events written.
DROP FUNCTION IF EXISTS run_sla_clock_reset(bigint, integer);
CREATE FUNCTION run_sla_clock_reset(reset bigint, batch integer, OUT taken boolean, OUT finished boolean, OUT announced integer)
LANGUAGE plpgsql AS $$
DECLARE
    pending sla_clock_resets%ROWTYPE;
    last uuid;
BEGIN
    SELECT * INTO pending FROM sla_clock_resets WHERE id = reset FOR UPDATE;
    taken := FOUND;
    finished := NOT taken;
    announced := 0;
    IF NOT taken THEN
        RETURN;
    END IF;
    SELECT r.last, r.announced INTO last, announced
    FROM reset_sla_clocks(ARRAY(SELECT id FROM sla_policies WHERE id = pending.policy_id OR calendar_id = pending.calendar_id),
                          pending.after, batch) AS r;
    finished := last IS NULL;
    IF finished THEN
        DELETE FROM sla_clock_resets WHERE id = pending.id;
    ELSE
        UPDATE sla_clock_resets SET after = last WHERE id = pending.id;
    END IF;
END
$$;
