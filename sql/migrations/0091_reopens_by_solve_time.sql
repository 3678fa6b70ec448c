-- The agents report counts a reopening at the time of the solve it undid (view
-- `report_agent_actions`), read through `ticket_status_periods_solved`; the index by the time a
-- solve was left served the old reading only, and cost a write on every solve that ends.
DROP INDEX IF EXISTS ticket_status_periods_reopened;
