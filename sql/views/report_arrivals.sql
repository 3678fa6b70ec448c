-- Volume: what arrived, one row per new ticket and per customer message, with the ticket's
-- dimensions for filters. A customer message is an inbound message classified `customer`: auto-
-- replies, bounces and reports are not volume. A ticket counts once, when it opened, on the channel
-- it opened on; its messages count on the channel each came by.
CREATE OR REPLACE VIEW report_arrivals AS
SELECT 'ticket'::text AS kind, t.id AS ticket_id, t.created_at AS at, t.channel::text AS channel,
       t.queue, t.category, t.tags, t.priority, t.assignee_id AS agent_id
FROM tickets t
UNION ALL
SELECT 'message'::text, m.ticket_id, m.created_at, m.channel::text,
       t.queue, t.category, t.tags, t.priority, t.assignee_id
FROM messages m JOIN tickets t ON t.id = m.ticket_id
WHERE m.direction = 'inbound' AND m.classification = 'customer';
