-- Per-agent work (`report_agent_actions`: what counts, and when) with the ticket's dimensions, for
-- the filters.
CREATE OR REPLACE VIEW report_agent_activity AS
SELECT a.kind, a.agent_id, a.ticket_id, a.at, a.business_seconds, a.wall_seconds,
       t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM report_agent_actions a JOIN tickets t ON t.id = a.ticket_id;
