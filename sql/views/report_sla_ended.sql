-- SLA outcomes of the clocks that stopped: each response that ended a wait with a due time, and each
-- time a ticket with a resolution target became solved (see `report_sla_outcomes`, which adds the
-- clocks still running). What is here changes only when the facts do, so closed periods of it are
-- kept computed (migration 0038).
CREATE OR REPLACE VIEW report_sla_ended AS
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
WHERE s.status = 'solved' AND t.resolution_due_at IS NOT NULL;
