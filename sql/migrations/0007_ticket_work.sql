-- What claiming and the work queue need: queues, agents' queue memberships, and a sortable priority.

-- Which team's queue a ticket waits in. Ingest and rules set it; 'general' until they do.
ALTER TABLE tickets ADD COLUMN queue text NOT NULL DEFAULT 'general' CHECK (queue ~ '^[a-z0-9_-]{1,64}$');

-- Urgent first: the queue orders by this, then by the first-response deadline, then by age.
ALTER TABLE tickets ADD COLUMN priority_rank smallint NOT NULL GENERATED ALWAYS AS (
    CASE priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'normal' THEN 1 ELSE 0 END
) STORED;

-- The queues an agent pulls from; empty means every queue (a small team shares one).
ALTER TABLE agents ADD COLUMN queues text[] NOT NULL DEFAULT '{}';

-- The queue's scan: only workable tickets, already in the order the queue takes them.
CREATE INDEX tickets_claimable ON tickets (priority_rank DESC, first_response_due_at ASC NULLS LAST, created_at ASC)
    WHERE status IN ('new', 'open');
