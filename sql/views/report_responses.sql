-- Response times: one row per measured wait, in wall-clock and business seconds.
-- - first_response: the customer's first wait on a ticket, ended by an agent's reply;
-- - next_response: every later wait (the customer wrote again after our answer), ended likewise;
-- - resolution: each time a ticket became solved, measured from when it opened (a reopened ticket
--   solved again counts again).
-- A response is an agent's reply (never the automatic acknowledgement or an internal note); a
-- customer message is an inbound message classified `customer` (migration 0024). Merged customers
-- change nothing here: tickets and their messages moved whole. Business seconds count on the
-- ticket's SLA calendar, or the standard calendar (標準) when it has no policy, computed when the
-- reply is sent or the ticket solved (migration 0029).
CREATE OR REPLACE VIEW report_responses AS
SELECT CASE WHEN r.is_first THEN 'first_response' ELSE 'next_response' END AS metric,
       r.ticket_id, r.responded_at AS at, r.wall_seconds, r.business_seconds, r.agent_id,
       t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM ticket_responses r JOIN tickets t ON t.id = r.ticket_id
UNION ALL
SELECT 'resolution', s.ticket_id, s.entered_at, extract(epoch FROM s.entered_at - t.created_at)::double precision,
       s.business_seconds_since_opened,
       t.assignee_id, t.channel::text, t.queue, t.category, t.tags, t.priority
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status = 'solved';
