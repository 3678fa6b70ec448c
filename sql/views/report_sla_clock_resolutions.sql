-- SLA outcomes of the resolution clocks: each time a ticket with a resolution target became solved
-- (or closed without being solved first), met when by the due time in force at that moment (kept with the solved stretch: a later pause or
-- a new priority moves the ticket's due time, not what an earlier solve was judged against; see
-- `report_sla_outcomes`).
CREATE OR REPLACE VIEW report_sla_clock_resolutions AS
SELECT 'resolution'::text AS target, s.ticket_id, t.number AS ticket_number, s.resolution_due_at AS due_at,
       s.entered_at AS ended_at, s.entered_at AS at, s.entered_at <= s.resolution_due_at AS met,
       greatest(extract(epoch FROM s.entered_at - s.resolution_due_at), 0)::double precision AS overdue_seconds,
       t.assignee_id AS agent_id, t.channel::text AS channel, t.queue, t.category, t.tags, t.priority
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id
WHERE s.status IN ('solved', 'closed') AND s.resolution_due_at IS NOT NULL;
