-- A duplicate closed by a merge stopped counting as a resolution in the SLA views
-- (`report_sla_clock_resolutions`, `report_sla_facts`). Periods the rollup computed before then
-- counted it: mark each merge's moment changed, so the fold computes those periods again and reports
-- compute them live until it has.
INSERT INTO report_response_changes (at)
SELECT merged_at FROM tickets WHERE merged_at IS NOT NULL;
