-- Per-agent work: one row per thing an agent did, with the ticket's dimensions.
-- - reply: an outbound message the agent wrote (the automatic acknowledgement has its own agent,
--   which is left out);
-- - note: an internal note the agent wrote;
-- - first_response: a first response of theirs, with the customer's wait (business and wall seconds);
-- - solved / reopened: a ticket assigned to them became solved, or left solved for an open status
--   (the assignee is today's, not the one at that moment);
-- - returned: a supervisor returned one of their replies unapproved (承認差し戻し).
CREATE OR REPLACE VIEW report_agent_activity AS
SELECT 'reply'::text AS kind, m.author_agent_id AS agent_id, m.ticket_id, m.created_at AS at,
       NULL::double precision AS business_seconds, NULL::double precision AS wall_seconds,
       t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM messages m JOIN tickets t ON t.id = m.ticket_id
WHERE m.direction = 'outbound' AND m.author_agent_id <> '00000000-0000-4000-8000-00000000a070'
UNION ALL
SELECT 'note', m.author_agent_id, m.ticket_id, m.created_at, NULL, NULL, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM messages m JOIN tickets t ON t.id = m.ticket_id
WHERE m.direction = 'internal'
UNION ALL
SELECT 'first_response', r.agent_id, r.ticket_id, r.responded_at, r.business_seconds, r.wall_seconds,
       t.channel::text, t.queue, t.category, t.tags, t.priority
FROM ticket_responses r JOIN tickets t ON t.id = r.ticket_id
WHERE r.is_first AND r.agent_id IS NOT NULL
UNION ALL
SELECT 'solved', t.assignee_id, s.ticket_id, s.entered_at, NULL, NULL, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved' AND t.assignee_id IS NOT NULL
UNION ALL
SELECT 'reopened', t.assignee_id, s.ticket_id, s.left_at, NULL, NULL, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved' AND s.left_at IS NOT NULL AND t.assignee_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM ticket_status_periods n
              WHERE n.ticket_id = s.ticket_id AND n.entered_at = s.left_at AND n.status IN ('new', 'open', 'pending', 'on_hold'))
UNION ALL
SELECT 'returned', r.author_agent_id, e.ticket_id, e.occurred_at, NULL, NULL, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM events e JOIN replies r ON r.id = (e.data->>'reply_id')::uuid JOIN tickets t ON t.id = e.ticket_id
WHERE e.type = 'reply.returned';
