-- SLA outcomes: one row per clock that ran out or stopped, measured against its due time. Three
-- kinds of clock, a view each:
-- - first_response / next_response: each response that ended a wait with a due time (the customer's
--   first wait, later waits), met when the reply was sent by then (`report_sla_clock_responses`);
-- - resolution: each time a ticket with a resolution target became solved, met when by then
--   (`report_sla_clock_resolutions`);
-- - a response clock still running past its due time is a breach already (ended_at NULL, counted
--   at the moment it fell due), so a report never hides a customer left waiting
--   (`report_sla_clock_running`).
-- `overdue_seconds` is how far past due (wall-clock), 0 when met.
CREATE OR REPLACE VIEW report_sla_outcomes AS
SELECT target, ticket_id, ticket_number, due_at, ended_at, at, met, overdue_seconds, agent_id, channel, queue, category, tags, priority
FROM report_sla_ended
UNION ALL
SELECT target, ticket_id, ticket_number, due_at, ended_at, at, met, overdue_seconds, agent_id, channel, queue, category, tags, priority
FROM report_sla_clock_running;
