-- The backlog's additions and removals per hour boundary and open status, by age bucket (migrations
-- 0036, 0037): the folded counts plus the pieces of the stretches not folded yet. The backlog at a
-- UTC hour boundary T is the sum of every row with hour <= T, exactly what report_status_periods
-- covering T says.
CREATE OR REPLACE VIEW report_backlog_hours AS
SELECT hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d FROM report_backlog_counts
UNION ALL
SELECT p.hour, p.status, p.under_1d, p.d1_to_3d, p.d3_to_7d, p.d7_to_30d, p.over_30d
FROM report_backlog_changes c, LATERAL report_backlog_pieces(c.status, c.opened_at, c.entered_at, c.left_at, c.sign) AS p;
