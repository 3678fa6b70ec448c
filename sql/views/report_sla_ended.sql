-- SLA outcomes of the clocks that stopped: each response that ended a wait with a due time, and each
-- time a ticket with a resolution target became solved (see `report_sla_outcomes`, which adds the
-- clocks still running). What is here changes only when the facts do, so closed periods of it are
-- kept computed (migration 0038).
CREATE OR REPLACE VIEW report_sla_ended AS
SELECT target, ticket_id, ticket_number, due_at, ended_at, at, met, overdue_seconds, agent_id, channel, queue, category, tags, priority
FROM report_sla_clock_responses
UNION ALL
SELECT target, ticket_id, ticket_number, due_at, ended_at, at, met, overdue_seconds, agent_id, channel, queue, category, tags, priority
FROM report_sla_clock_resolutions;
