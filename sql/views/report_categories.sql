-- Voice of the customer (問い合わせ内容別): each ticket once under its category and once under each
-- of its tags, with when it opened, its customer messages, and its first response and resolution
-- times (business and wall seconds; resolution to its first time solved). A ticket without a category
-- counts under '(none)'. The measures are read once per ticket (not once per tag), each from an
-- index alone (customer messages: `messages_customer_by_ticket`), and a filter on the opening time
-- reaches the tickets' index.
CREATE OR REPLACE VIEW report_categories AS
SELECT d.dimension, d.value, t.id, t.created_at AS at, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority,
       t.assignee_id AS agent_id, m.inbound_messages, m.first_response_business_seconds, m.first_response_wall_seconds,
       m.resolution_wall_seconds
FROM tickets t
CROSS JOIN LATERAL (
    SELECT (SELECT count(*) FROM messages x WHERE x.ticket_id = t.id AND x.direction = 'inbound' AND x.classification = 'customer') AS inbound_messages,
           r.business_seconds AS first_response_business_seconds, r.wall_seconds AS first_response_wall_seconds,
           (SELECT extract(epoch FROM min(s.entered_at) - t.created_at)::double precision FROM ticket_status_periods s
            WHERE s.ticket_id = t.id AND s.status = 'solved') AS resolution_wall_seconds
    FROM (SELECT NULL) AS one
    LEFT JOIN LATERAL (SELECT business_seconds, wall_seconds FROM ticket_responses r WHERE r.ticket_id = t.id AND r.is_first
                       ORDER BY r.responded_at LIMIT 1) r ON true
    -- Kept a subquery of its own (not pulled up into the outer query), so the measures are read
    -- once per ticket before the ticket is repeated for each of its tags.
    OFFSET 0
) m
CROSS JOIN LATERAL (
    SELECT 'category'::text, coalesce(t.category, '(none)')
    UNION ALL
    SELECT 'tag', tag FROM unnest(t.tags) AS tag
) AS d(dimension, value);
