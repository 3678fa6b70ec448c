-- The facts of `report_responses` (same rows, same meaning) with only what the response-time rollup
-- keeps: the metric, when, the two durations and the ticket's channel. The channel is looked up per
-- row, and only when a channel filter reads it, so the few facts of a period computed live (today's,
-- one changed since its fold) never join the whole tickets table (at 1,000,000 tickets that join
-- read every ticket: 150 ms for today's 12,000 facts).
CREATE OR REPLACE VIEW report_response_facts AS
SELECT CASE WHEN r.is_first THEN 'first_response' ELSE 'next_response' END AS metric, r.responded_at AS at,
       r.wall_seconds, r.business_seconds, (SELECT t.channel::text FROM tickets t WHERE t.id = r.ticket_id) AS channel
FROM ticket_responses r
UNION ALL
SELECT 'resolution', s.entered_at, extract(epoch FROM s.entered_at - t.created_at)::double precision,
       s.business_seconds_since_opened, t.channel::text
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved';
