-- The zones whose response times and SLA outcomes are computed ahead per closed period (migration
-- 0038): every business calendar's, the reports' default and UTC.
CREATE OR REPLACE VIEW report_response_zones AS
SELECT time_zone AS zone FROM business_calendars
UNION
SELECT zone FROM (VALUES ('Asia/Tokyo'), ('UTC')) AS v(zone);
