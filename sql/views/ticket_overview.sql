-- One row per ticket with the counts a list or dashboard shows beside it.
CREATE OR REPLACE VIEW ticket_overview AS
SELECT t.id,
       t.number,
       t.status,
       t.priority,
       t.channel,
       t.customer_id,
       t.assignee_id,
       t.created_at,
       t.updated_at,
       count(m.id) FILTER (WHERE m.direction = 'inbound')  AS inbound_messages,
       count(m.id) FILTER (WHERE m.direction = 'outbound') AS outbound_messages,
       max(m.created_at)                                   AS last_message_at
FROM tickets t
LEFT JOIN messages m ON m.ticket_id = t.id
GROUP BY t.id;
