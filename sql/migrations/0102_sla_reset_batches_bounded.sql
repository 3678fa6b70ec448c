-- A clock reset runs `reset_sla_clocks` batch after batch on one pooled session, and PL/pgSQL
-- caches each statement's plan: after five batches PostgreSQL may keep a generic plan, planned
-- without knowing `after`. There `(after IS NULL OR id > after)` cannot bound the index scan, so
-- every batch would walk the tickets from the first id and filter out the ones done before: with
-- 200,000 tickets under a policy, 233 ms a batch instead of 10-16 ms, a reset quadratic in its
-- tickets (measured with plan_cache_mode = force_generic_plan; in auto mode the custom plan was
-- still kept, so this is a trap for shifting statistics, not a slowdown seen yet). The nil UUID
-- is below every id, so `id > coalesce(after, nil)` is always an index condition. The rest of the
-- function is 0075's, unchanged.
CREATE OR REPLACE FUNCTION reset_sla_clocks(policies uuid[], after uuid DEFAULT NULL, batch integer DEFAULT NULL,
                                 OUT last uuid, OUT announced integer)
LANGUAGE plpgsql AS $$
DECLARE
    chosen uuid[];
BEGIN
    SELECT array_agg(c.id ORDER BY c.id) INTO chosen
    FROM (SELECT id FROM tickets
          WHERE sla_policy_id = ANY (policies) AND status NOT IN ('solved', 'closed') AND id > coalesce(after, '00000000-0000-0000-0000-000000000000'::uuid)
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
