-- SLA outcomes: one row per clock that ran out or stopped, measured against its due time.
-- - first_response / next_response: each response that ended a wait with a due time (the customer's
--   first wait, later waits), met when the reply was sent by then;
-- - resolution: each time a ticket with a resolution target became solved, met when by then;
-- - a response clock still running past its due time is a breach already (ended_at NULL, counted
--   at the moment it fell due), so a report never hides a customer left waiting.
-- `overdue_seconds` is how far past due (wall-clock), 0 when met.
CREATE OR REPLACE VIEW report_sla_outcomes AS
SELECT CASE WHEN r.is_first THEN 'first_response' ELSE 'next_response' END AS target, r.ticket_id, t.number AS ticket_number,
       r.due_at, r.responded_at AS ended_at, r.responded_at AS at, r.responded_at <= r.due_at AS met,
       greatest(extract(epoch FROM r.responded_at - r.due_at), 0)::double precision AS overdue_seconds,
       r.agent_id, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM ticket_responses r JOIN tickets t ON t.id = r.ticket_id
WHERE r.due_at IS NOT NULL
UNION ALL
SELECT 'resolution', s.ticket_id, t.number, t.resolution_due_at, s.entered_at, s.entered_at, s.entered_at <= t.resolution_due_at,
       greatest(extract(epoch FROM s.entered_at - t.resolution_due_at), 0)::double precision,
       t.assignee_id, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved' AND t.resolution_due_at IS NOT NULL
UNION ALL
SELECT CASE WHEN t.first_responded_at IS NULL THEN 'first_response' ELSE 'next_response' END, t.id, t.number,
       t.response_due_at, NULL, t.response_due_at, false,
       extract(epoch FROM now() - t.response_due_at)::double precision,
       t.assignee_id, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM tickets t
WHERE t.response_due_at < now();
