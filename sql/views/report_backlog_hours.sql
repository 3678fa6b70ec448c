-- The backlog's additions and removals per hour boundary and open status, by age bucket (migration
-- 0036): the folded counts plus the changes not folded yet. The backlog at a UTC hour boundary T is
-- the sum of every row with hour <= T, exactly what report_status_periods covering T says.
CREATE OR REPLACE VIEW report_backlog_hours AS
SELECT hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d FROM report_backlog_counts
UNION ALL
SELECT hour, status, under_1d, d1_to_3d, d3_to_7d, d7_to_30d, over_30d FROM report_backlog_changes;
