-- Two things a review found.
--
-- 1. Who submitted a reply for approval. The approval goes out on that agent's behalf (their claim
--    must still be live) and never by their own hand; it was read from the reply.submitted event,
--    which MADOGUCHI_EVENT_RETENTION_DAYS may already have removed. Replies awaiting approval now
--    keep it on the row (taken from their latest reply.submitted event where one is left; a reply
--    whose event is gone counts as submitted by its author, as before this column).
-- 2. The standard calendar's 年末年始 (12/29–1/3) were shipped for 2025-12-29 to 2027-01-03 only,
--    while the national holidays run through 2027: 2027-12-29 to 2027-12-31 counted as working
--    days. Added through 2028-01-03, only where the calendar still holds the shipped days (a team
--    that removed them works through the new year).

ALTER TABLE replies ADD COLUMN IF NOT EXISTS submitted_by uuid REFERENCES agents (id);

UPDATE replies r SET submitted_by = (
    SELECT e.actor_agent_id FROM events e
    WHERE e.ticket_id = r.ticket_id AND e.type = 'reply.submitted' AND e.data->>'reply_id' = r.id::text
    ORDER BY e.id DESC LIMIT 1)
WHERE r.state = 'submitted' AND r.submitted_by IS NULL;

INSERT INTO business_closed_days (calendar_id, day, name)
SELECT '00000000-0000-4000-8000-0000000ca1e0', day::date, '年末年始'
FROM generate_series(date '2027-12-29', date '2028-01-03', interval '1 day') AS day
WHERE EXISTS (SELECT 1 FROM business_closed_days
              WHERE calendar_id = '00000000-0000-4000-8000-0000000ca1e0' AND day = date '2026-12-29' AND name = '年末年始')
ON CONFLICT (calendar_id, day) DO NOTHING;
