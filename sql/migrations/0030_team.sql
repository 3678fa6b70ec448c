-- The team: queues as a resource of their own, agents' duty and capacity, rules that route as well
-- as prioritize (振り分け), and auto-assignment among the agents on duty.

-- A queue is a team's inbox ("general", "returns"). Tickets name it by `name`, which never changes.
CREATE TABLE queues (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    description    text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    -- The SLA clocks of tickets routed here (the policy carries the business calendar); NULL: the
    -- default policy, as for any ticket.
    sla_policy_id  uuid REFERENCES sla_policies (id) ON DELETE SET NULL,
    -- Who gets a new ticket without pulling it: nobody (agents pull from the queue), the member who
    -- waited longest since their last one, or the member with the fewest open tickets.
    auto_assign    text NOT NULL DEFAULT 'off' CHECK (auto_assign IN ('off', 'round_robin', 'balanced')),
    version        bigint NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every queue already named by a ticket or an agent becomes a queue row, so the foreign keys below hold.
INSERT INTO queues (name)
SELECT 'general' UNION SELECT DISTINCT queue FROM tickets UNION SELECT DISTINCT unnest(queues) FROM agents
ON CONFLICT DO NOTHING;

ALTER TABLE tickets ADD CONSTRAINT tickets_queue_known FOREIGN KEY (queue) REFERENCES queues (name);

-- Agents: what they can handle, how much, and whether they are on duty now. Membership stays the
-- `queues` array of migration 0007 (one owner): the queues an agent pulls from and is assigned in.
ALTER TABLE agents
    ADD COLUMN skills                   text[] NOT NULL DEFAULT '{}' CHECK (cardinality(skills) <= 50),
    -- The most open tickets (assigned or claimed) auto-assignment gives them; NULL: no limit.
    ADD COLUMN capacity                 integer CHECK (capacity BETWEEN 1 AND 10000),
    ADD COLUMN availability             text NOT NULL DEFAULT 'available' CHECK (availability IN ('available', 'away', 'offline')),
    ADD COLUMN availability_changed_at  timestamptz NOT NULL DEFAULT now(),
    -- Round robin: whoever waited longest since their last assigned ticket goes next.
    ADD COLUMN last_assigned_at         timestamptz,
    ADD COLUMN deactivated_at           timestamptz,
    ADD COLUMN version                  bigint NOT NULL DEFAULT 1,
    ADD COLUMN updated_at               timestamptz NOT NULL DEFAULT now();

-- Two people on the team never share an address (the automatic agent has none).
CREATE UNIQUE INDEX agents_email ON agents (lower(email)) WHERE active AND email IS NOT NULL;

-- Rules route as well as prioritize: one engine, evaluated in `position` order, each rule seeing the
-- ticket as the rules before it left it. Priority: the highest any matching rule names. Queue,
-- category and skill: the first matching rule that sets one. Tags: every matching rule's.
ALTER TABLE priority_rules RENAME TO rules;
ALTER TABLE rules
    ALTER COLUMN priority DROP NOT NULL,
    ADD COLUMN position    integer,
    -- Addresses the message was sent to: "returns@shop.example", or "returns@" for that mailbox at any domain.
    ADD COLUMN recipients  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(recipients) <= 50),
    ADD COLUMN set_queue     text REFERENCES queues (name),
    ADD COLUMN set_category  text CHECK (length(set_category) <= 200),
    ADD COLUMN add_tags      text[] NOT NULL DEFAULT '{}' CHECK (cardinality(add_tags) <= 20),
    ADD COLUMN set_skill     text CHECK (set_skill ~ '^[a-z0-9_-]{1,64}$');
UPDATE rules r SET position = o.n FROM (SELECT id, row_number() OVER (ORDER BY name) AS n FROM rules) o WHERE o.id = r.id;
ALTER TABLE rules ALTER COLUMN position SET NOT NULL, ADD CONSTRAINT rules_position CHECK (position BETWEEN 1 AND 100000);

ALTER TABLE rules DROP CONSTRAINT priority_rules_check;
ALTER TABLE rules ADD CONSTRAINT rules_condition
    CHECK (cardinality(keywords) > 0 OR cardinality(channels) > 0 OR cardinality(categories) > 0 OR vip_only OR cardinality(recipients) > 0);
ALTER TABLE rules ADD CONSTRAINT rules_action
    CHECK (priority IS NOT NULL OR requires_approval OR set_queue IS NOT NULL OR set_category IS NOT NULL
           OR cardinality(add_tags) > 0 OR set_skill IS NOT NULL);

-- What routing decided, shown with the ticket as priority_reason is; and the skill its assignee needs.
ALTER TABLE tickets
    ADD COLUMN routing_reason  text CHECK (length(routing_reason) <= 2000),
    ADD COLUMN required_skill  text CHECK (required_skill ~ '^[a-z0-9_-]{1,64}$');

-- A ticket assigned to somebody is theirs: the queue hands it to anyone else only once their claim
-- lapsed. So the scan for unclaimed tickets covers unassigned ones only (and never walks past the
-- assigned ones at the head of the queue).
DROP INDEX tickets_claimable;
CREATE INDEX tickets_claimable ON tickets (priority_rank DESC, response_due_at ASC NULLS LAST, created_at ASC)
    WHERE status IN ('new', 'open') AND claim_agent_id IS NULL AND assignee_id IS NULL;

-- Auto-assignment's scan: unassigned workable tickets per queue, in the queue's order.
CREATE INDEX tickets_unassigned ON tickets (queue, priority_rank DESC, response_due_at ASC NULLS LAST, created_at ASC)
    WHERE assignee_id IS NULL AND claim_agent_id IS NULL AND status IN ('new', 'open');
-- The queue's "assigned to me first": an agent's own unclaimed tickets, in the queue's order.
CREATE INDEX tickets_assigned_unclaimed ON tickets (assignee_id, priority_rank DESC, response_due_at ASC NULLS LAST, created_at ASC)
    WHERE assignee_id IS NOT NULL AND claim_agent_id IS NULL AND status IN ('new', 'open');
-- Workload: an agent's open tickets.
CREATE INDEX tickets_assignee_open ON tickets (assignee_id)
    WHERE assignee_id IS NOT NULL AND status IN ('new', 'open', 'pending', 'on_hold');

-- What an agent is carrying: open tickets assigned to them, and tickets they hold a live claim on.
-- Two counts, each on its own index, rather than one OR that no index serves.
CREATE INDEX tickets_claim_agent ON tickets (claim_agent_id) WHERE claim_agent_id IS NOT NULL;
CREATE FUNCTION agent_workload(agent uuid) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM tickets t
            WHERE t.assignee_id = agent AND t.status IN ('new', 'open', 'pending', 'on_hold'))
         + (SELECT count(*) FROM tickets t
            WHERE t.claim_agent_id = agent AND t.claim_expires_at > now() AND t.assignee_id IS DISTINCT FROM agent
              AND t.status IN ('new', 'open', 'pending', 'on_hold'))
$$;

-- Assigns up to `batch` waiting tickets of auto-assigned queues, most urgent first, each to an
-- available member under capacity with the skill the ticket needs; returns what it assigned.
-- Ingest never waits on this: a worker calls it after commits (any number of workers in any number
-- of processes), and one advisory lock makes the calls take turns, so two never count the same
-- agent's workload at once and capacity holds. Workloads are counted once per call and kept up to
-- date as it assigns. A ticket someone is changing right now is skipped (SKIP LOCKED) and taken
-- next time; a ticket nobody can take waits, unassigned, in its queue.
CREATE FUNCTION assign_waiting_tickets(batch integer)
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
        PERFORM 1 FROM tickets t
        WHERE t.id = waiting.id AND t.assignee_id IS NULL AND t.claim_agent_id IS NULL AND t.status IN ('new', 'open')
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        slot := array_position(ids, chosen);
        -- The agent's row, rechecked as it is now: one deactivated, gone off duty or filled up (a claim
        -- of their own) since this call began is dropped from it. Waiting on its lock orders this after
        -- such a change, never before; those changes lock no unassigned ticket, so the wait cannot
        -- close a cycle. clock_timestamp, not now(): every assignment here needs its own turn.
        UPDATE agents a SET last_assigned_at = clock_timestamp()
        WHERE a.id = chosen AND a.active AND a.availability = 'available'
          AND (a.capacity IS NULL OR agent_workload(a.id) < a.capacity);
        IF NOT FOUND THEN
            ids[slot] := NULL;
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

INSERT INTO event_types (name, description) VALUES
    ('ticket.routed', 'Rules set a new ticket''s queue, category, tags or required skill.'),
    ('ticket.assigned', 'Auto-assignment gave a waiting ticket to an available agent of its queue.'),
    ('agent.created', 'An admin or supervisor added an agent.'),
    ('agent.updated', 'An agent''s name, email, queues, skills, capacity or approval flag changed.'),
    ('agent.availability_changed', 'An agent went available, away or offline.'),
    ('agent.deactivated', 'An agent left: keys revoked, claims released, open tickets back in their queues.'),
    ('queue.created', 'A supervisor added a queue.'),
    ('queue.updated', 'A supervisor changed a queue''s description, SLA policy or auto-assignment.'),
    ('queue.deleted', 'A supervisor removed a queue no ticket or rule names.');
