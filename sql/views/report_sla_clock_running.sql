-- SLA outcomes of the clocks still running past their due time (a response clock, or the resolution
-- clock of a ticket neither solved nor closed): a breach already
-- (ended_at NULL, counted at the moment it fell due), so a report never hides a customer left
-- waiting; how late grows by the second (see `report_sla_outcomes`). A clock paused while the ticket
-- waits on the customer (pending) is judged at the moment it paused, as the ticket's `sla_state` is:
-- one that fell due during the pause is not late (resuming pushes its due time back), one already
-- late stays as late as it was.
CREATE OR REPLACE VIEW report_sla_clock_running AS
SELECT CASE WHEN t.first_responded_at IS NULL THEN 'first_response' ELSE 'next_response' END AS target, t.id AS ticket_id,
       t.number AS ticket_number, t.response_due_at AS due_at, NULL::timestamptz AS ended_at, t.response_due_at AS at, false AS met,
       extract(epoch FROM coalesce(t.sla_paused_at, now()) - t.response_due_at)::double precision AS overdue_seconds,
       t.assignee_id AS agent_id, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM tickets t
WHERE t.response_due_at < now() AND (t.sla_paused_at IS NULL OR t.response_due_at < t.sla_paused_at)
UNION ALL
SELECT 'resolution', t.id, t.number, t.resolution_due_at, NULL::timestamptz, t.resolution_due_at, false,
       extract(epoch FROM coalesce(t.sla_paused_at, now()) - t.resolution_due_at)::double precision,
       t.assignee_id, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM tickets t
WHERE t.resolution_due_at < coalesce(t.sla_paused_at, now()) AND t.resolution_due_at IS NOT NULL AND t.status NOT IN ('solved', 'closed');
