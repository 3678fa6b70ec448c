-- Backlog: every stretch a ticket spent in a status (kept by a trigger, migration 0027), with the
-- ticket's dimensions. The backlog at an instant is the stretches in an open status (new, open,
-- pending, on_hold) that cover it; a ticket's age there is the instant minus its opening.
CREATE OR REPLACE VIEW report_status_periods AS
SELECT s.ticket_id, s.status, s.entered_at, s.left_at, t.created_at AS opened_at, t.channel::text AS channel,
       t.queue, t.category, t.tags, t.priority, t.assignee_id AS agent_id
FROM ticket_status_periods s JOIN tickets t ON t.id = s.ticket_id;
