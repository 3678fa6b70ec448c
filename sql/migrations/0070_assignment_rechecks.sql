-- Auto-assignment rechecks what it read before it waited (review findings; assign_waiting_tickets
-- was made in 0030_team.sql, whose comment says what it does).
--
-- - A ticket's queue and required skill: the round's loop reads them when it begins, and a ticket a
--   supervisor moved meanwhile to a queue without auto-assignment (or to another team's) was given
--   to a member of the queue it left.
-- - The chosen agent's queues and skills, once their row is locked: an agent taken off the queue or
--   the skill while the worker waited on their row got the ticket all the same.

CREATE OR REPLACE FUNCTION assign_waiting_tickets(batch integer)
RETURNS TABLE (ticket_id uuid, customer_id uuid, agent_id uuid, queue text, mode text, version bigint)
LANGUAGE plpgsql AS $$
DECLARE
    auto_queues text[];
    ids uuid[];
    loads bigint[];
    waiting record;
    chosen uuid;
    slot integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('madoguchi.assignment', 0));
    auto_queues := ARRAY(SELECT q.name FROM queues q WHERE q.auto_assign <> 'off');
    -- Who could take anything now, and what each carries.
    SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}'), coalesce(array_agg(agent_workload(a.id) ORDER BY a.id), '{}')
    INTO ids, loads
    FROM agents a
    WHERE a.active AND a.availability = 'available' AND a.queues && auto_queues
      AND (a.capacity IS NULL OR agent_workload(a.id) < a.capacity);
    -- Nobody on duty with room: nothing to scan.
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    -- Only tickets somebody here could take: one nobody can (a skill no one on duty has, a queue
    -- whose members are all away) waits without holding back the tickets behind it.
    FOR waiting IN
        SELECT t.id, t.queue, t.required_skill, q.auto_assign
        FROM tickets t JOIN queues q ON q.name = t.queue
        WHERE t.queue = ANY (auto_queues) AND t.assignee_id IS NULL AND t.claim_agent_id IS NULL AND t.status IN ('new', 'open')
          AND EXISTS (SELECT 1 FROM agents a
                      WHERE a.id = ANY (ids) AND t.queue = ANY (a.queues)
                        AND (t.required_skill IS NULL OR t.required_skill = ANY (a.skills)))
        ORDER BY t.priority_rank DESC, t.response_due_at ASC NULLS LAST, t.created_at ASC
        LIMIT batch
    LOOP
        -- Everybody full: the rest wait too.
        EXIT WHEN NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = ANY (ids)
                              AND (a.capacity IS NULL OR loads[array_position(ids, a.id)] < a.capacity));
        SELECT a.id INTO chosen
        FROM agents a
        WHERE a.id = ANY (ids) AND waiting.queue = ANY (a.queues)
          AND (waiting.required_skill IS NULL OR waiting.required_skill = ANY (a.skills))
          AND (a.capacity IS NULL OR loads[array_position(ids, a.id)] < a.capacity)
        ORDER BY CASE WHEN waiting.auto_assign = 'balanced' THEN loads[array_position(ids, a.id)] ELSE 0 END,
                 a.last_assigned_at ASC NULLS FIRST, a.id
        LIMIT 1;
        CONTINUE WHEN chosen IS NULL;
        -- Rechecked as the ticket is now, its queue and skill too: the loop reads them as they were
        -- when the round began, and a ticket moved meanwhile to a queue without auto-assignment
        -- went to a member of the one it left.
        PERFORM 1 FROM tickets t
        WHERE t.id = waiting.id AND t.assignee_id IS NULL AND t.claim_agent_id IS NULL AND t.status IN ('new', 'open')
          AND t.queue = ANY (auto_queues) AND t.queue = waiting.queue AND t.required_skill IS NOT DISTINCT FROM waiting.required_skill
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        slot := array_position(ids, chosen);
        -- The agent's row, rechecked as it is now: one deactivated, gone off duty or filled up since
        -- this call began is dropped from it. Waiting on its lock orders this after such a change,
        -- never before; those changes lock no unassigned ticket, so the wait cannot close a cycle.
        -- Their queues and skills are rechecked too: `chosen` was read before the lock, and an agent
        -- taken off the queue or the skill while this waited got the ticket all the same; then only
        -- this ticket waits for the next round. (A claim the agent is making at this instant is not
        -- counted until it commits: a claim locks no agent row, so capacity can be passed by one.)
        -- clock_timestamp, not now(): every assignment here needs its own turn.
        UPDATE agents a SET last_assigned_at = clock_timestamp()
        WHERE a.id = chosen AND a.active AND a.availability = 'available'
          AND (a.capacity IS NULL OR agent_workload(a.id) < a.capacity)
          AND waiting.queue = ANY (a.queues) AND (waiting.required_skill IS NULL OR waiting.required_skill = ANY (a.skills));
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = chosen AND a.active AND a.availability = 'available'
                             AND (a.capacity IS NULL OR agent_workload(a.id) < a.capacity)) THEN
                ids[slot] := NULL;
            END IF;
            CONTINUE;
        END IF;
        UPDATE tickets t SET assignee_id = chosen, version = t.version + 1, updated_at = now()
        WHERE t.id = waiting.id
        RETURNING t.id, t.customer_id, t.assignee_id, t.queue, waiting.auto_assign, t.version
        INTO ticket_id, customer_id, agent_id, queue, mode, version;
        loads[slot] := loads[slot] + 1;
        RETURN NEXT;
    END LOOP;
END
$$;
