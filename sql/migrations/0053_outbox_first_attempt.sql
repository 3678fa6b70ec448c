-- When a row was first tried. LINE honours a push's retry key for 24 hours after the first request
-- (developers.line.biz, "Retrying a failed API request"); a retry later than that could make a second
-- message, so the worker holds such a row for a person instead (ProviderDelivery). Rows already tried
-- count from when they were queued, the earliest their first attempt can have been.
ALTER TABLE outbox ADD COLUMN first_attempt_at timestamptz;
UPDATE outbox SET first_attempt_at = created_at WHERE attempts > 0;
