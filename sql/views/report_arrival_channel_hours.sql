-- Volume per UTC hour and channel alone (migration 0035), for a report without filters: the same
-- pieces as report_arrival_hours with the other dimensions added up, at most 8 keys an hour.
CREATE OR REPLACE VIEW report_arrival_channel_hours AS
SELECT hour, kind, channel::text AS channel, count FROM report_arrival_totals
UNION ALL
SELECT hour, kind, channel::text, change FROM report_arrival_changes;
