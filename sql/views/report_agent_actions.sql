-- What each agent did: one row per thing, with the ticket and when (see `report_agent_activity`,
-- which adds the ticket's dimensions for filters). The agents report reads this narrow view when a
-- request has no filter but the agent: no ticket is looked up for a reply, a note or a first
-- response (at 100,000 tickets, a year's report: 2.1–2.3 s through the dimensions, 1.2–1.4 s here;
-- 0.75–0.96 s once migration 0044 let each arm read its own rows by time).
-- - reply: an outbound message the agent wrote (the automatic acknowledgement has its own agent,
--   which is left out);
-- - note: an internal note the agent wrote; not the record a merge leaves ("Merged ticket #… into
--   this one"): a supervisor who merged two duplicates had "written" two notes and "handled" both;
-- - first_response: a first response of theirs, with the customer's wait (business and wall seconds);
-- - solved / reopened: a ticket assigned to them became solved, at the solve's time; `reopened` is
--   a solve that did not last (the ticket left solved for an open status, whenever that was), also
--   at the solve's time, so that the reopened tickets of a range are some of its solved ones and the
--   reopen rate is at most 1 (counted by the reopening's time, tickets solved before the range and
--   reopened in it made rates above 100 %). The assignee is today's, not the one at that moment;
-- - returned: a supervisor returned one of their replies unapproved (承認差し戻し), read from the
--   note the return leaves on the timeline (events may be removed by retention; notes stay).
CREATE OR REPLACE VIEW report_agent_actions AS
SELECT 'reply'::text AS kind, m.author_agent_id AS agent_id, m.ticket_id, m.created_at AS at,
       NULL::double precision AS business_seconds, NULL::double precision AS wall_seconds
FROM messages m
WHERE m.direction = 'outbound' AND m.author_agent_id <> '00000000-0000-4000-8000-00000000a070'
UNION ALL
SELECT 'note', m.author_agent_id, m.ticket_id, m.created_at, NULL, NULL
FROM messages m
WHERE m.direction = 'internal' AND m.metadata->>'kind' IS DISTINCT FROM 'ticket_merged'
UNION ALL
SELECT 'first_response', r.agent_id, r.ticket_id, r.responded_at, r.business_seconds, r.wall_seconds
FROM ticket_responses r
WHERE r.is_first AND r.agent_id IS NOT NULL
UNION ALL
SELECT 'solved', t.assignee_id, s.ticket_id, s.entered_at, NULL, NULL
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved' AND t.assignee_id IS NOT NULL
UNION ALL
SELECT 'reopened', t.assignee_id, s.ticket_id, s.entered_at, NULL, NULL
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved' AND s.left_at IS NOT NULL AND t.assignee_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM ticket_status_periods n
              WHERE n.ticket_id = s.ticket_id AND n.entered_at = s.left_at AND n.status IN ('new', 'open', 'pending', 'on_hold'))
UNION ALL
SELECT 'returned', r.author_agent_id, m.ticket_id, m.created_at, NULL, NULL
FROM messages m JOIN replies r ON r.id = (m.metadata->>'reply_id')::uuid
WHERE m.direction = 'internal' AND m.metadata->>'kind' = 'approval_returned';
