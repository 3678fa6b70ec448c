-- Volume per UTC hour, kept as things arrive (migration 0035): the counts of report_arrivals by hour,
-- kind, channel, queue, category and priority, as pieces to add up — the folded count and each
-- change not folded yet — so it is exact at every moment. A key can appear more than once: sum it.
-- (Grouping here would make every reader group twice; the reports sum per period anyway.)
CREATE OR REPLACE VIEW report_arrival_hours AS
SELECT hour, kind, channel::text AS channel, queue, category, priority, count FROM report_arrival_counts
UNION ALL
SELECT hour, kind, channel::text, queue, category, priority, change FROM report_arrival_changes;
