-- Who besides its author changed a reply (its words, subject, recipients or files) before it went.
-- A flagged agent's words go through a supervisor whoever sends them: a novice who edits a
-- colleague's draft and hands the ticket back would otherwise have their words sent unseen by the
-- colleague's hand. Nor does an agent approve words they edited. Backfilled for replies not yet sent
-- from their reply.edited events, where retention has left them.

ALTER TABLE replies ADD COLUMN IF NOT EXISTS editors uuid[] NOT NULL DEFAULT '{}';

UPDATE replies r SET editors = edited.agents
FROM (SELECT r2.id, array_agg(DISTINCT e.actor_agent_id) AS agents
      FROM replies r2 JOIN events e ON e.ticket_id = r2.ticket_id AND e.type = 'reply.edited' AND e.data->>'reply_id' = r2.id::text
      WHERE r2.state IN ('draft', 'submitted') AND e.actor_agent_id IS NOT NULL AND e.actor_agent_id <> r2.author_agent_id
      GROUP BY r2.id) AS edited
WHERE r.id = edited.id AND r.editors = '{}';
