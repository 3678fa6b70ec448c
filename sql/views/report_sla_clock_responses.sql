-- SLA outcomes of the response clocks that stopped: each response that ended a wait with a due time
-- (the customer's first wait, later waits), met when the reply was sent by then. One of the three
-- kinds of clock `report_sla_outcomes` adds up; the page of breaches reads each kind on its own, in
-- time order (index `ticket_responses_breached`).
CREATE OR REPLACE VIEW report_sla_clock_responses AS
SELECT CASE WHEN r.is_first THEN 'first_response' ELSE 'next_response' END AS target, r.ticket_id, t.number AS ticket_number,
       r.due_at, r.responded_at AS ended_at, r.responded_at AS at, r.responded_at <= r.due_at AS met,
       greatest(extract(epoch FROM r.responded_at - r.due_at), 0)::double precision AS overdue_seconds,
       r.agent_id, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM ticket_responses r JOIN tickets t ON t.id = r.ticket_id
WHERE r.due_at IS NOT NULL;
