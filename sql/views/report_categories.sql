-- Voice of the customer (問い合わせ内容別): each ticket once under its category and once under each
-- of its tags, with when it opened, its customer messages, and its first response and resolution
-- times (business and wall seconds; resolution to its first time solved). A ticket without a category
-- counts under '(none)'.
CREATE OR REPLACE VIEW report_categories AS
WITH measured AS (
    SELECT t.id, t.created_at AS at, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority, t.assignee_id AS agent_id,
           (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'inbound' AND m.classification = 'customer') AS inbound_messages,
           (SELECT r.business_seconds FROM ticket_responses r WHERE r.ticket_id = t.id AND r.is_first ORDER BY r.responded_at LIMIT 1) AS first_response_business_seconds,
           (SELECT r.wall_seconds FROM ticket_responses r WHERE r.ticket_id = t.id AND r.is_first ORDER BY r.responded_at LIMIT 1) AS first_response_wall_seconds,
           (SELECT extract(epoch FROM min(s.entered_at) - t.created_at)::double precision FROM ticket_status_periods s
            WHERE s.ticket_id = t.id AND s.status = 'solved') AS resolution_wall_seconds
    FROM tickets t
)
SELECT 'category'::text AS dimension, coalesce(x.category, '(none)') AS value, x.*
FROM measured x
UNION ALL
SELECT 'tag', tag, x.*
FROM measured x CROSS JOIN LATERAL unnest(x.tags) AS tag;
