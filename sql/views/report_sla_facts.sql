-- The outcomes of `report_sla_outcomes` (same rows, same meaning) with only what the SLA rollup
-- keeps: the target, when, met or not, how late and the ticket's channel, looked up per response
-- and only when a channel filter reads it (see `report_response_facts`).
CREATE OR REPLACE VIEW report_sla_facts AS
SELECT CASE WHEN r.is_first THEN 'first_response' ELSE 'next_response' END AS target, r.responded_at AS at,
       r.responded_at <= r.due_at AS met, greatest(extract(epoch FROM r.responded_at - r.due_at), 0)::double precision AS overdue_seconds,
       (SELECT t.channel::text FROM tickets t WHERE t.id = r.ticket_id) AS channel
FROM ticket_responses r
WHERE r.due_at IS NOT NULL
UNION ALL
SELECT 'resolution', s.entered_at, s.entered_at <= s.resolution_due_at,
       greatest(extract(epoch FROM s.entered_at - s.resolution_due_at), 0)::double precision,
       (SELECT t.channel::text FROM tickets t WHERE t.id = s.ticket_id)
FROM ticket_status_periods s
WHERE s.status IN ('solved', 'closed') AND s.resolution_due_at IS NOT NULL
UNION ALL
SELECT CASE WHEN t.first_responded_at IS NULL THEN 'first_response' ELSE 'next_response' END, t.response_due_at, false,
       extract(epoch FROM coalesce(t.sla_paused_at, now()) - t.response_due_at)::double precision, t.channel::text
FROM tickets t
WHERE t.response_due_at < now() AND (t.sla_paused_at IS NULL OR t.response_due_at < t.sla_paused_at)
UNION ALL
SELECT 'resolution', t.resolution_due_at, false,
       extract(epoch FROM coalesce(t.sla_paused_at, now()) - t.resolution_due_at)::double precision, t.channel::text
FROM tickets t
WHERE t.resolution_due_at < coalesce(t.sla_paused_at, now()) AND t.resolution_due_at IS NOT NULL AND t.status NOT IN ('solved', 'closed');
