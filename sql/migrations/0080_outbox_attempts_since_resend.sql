-- A held reply a person sends again gets its attempts afresh: counted from their decision, a row
-- held at its last attempt met one 451 and failed for good. `attempts` itself keeps counting (each
-- attempt's writes are matched on it, so a stale attempt can never write over a later one).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS attempts_before_resend integer NOT NULL DEFAULT 0
    CHECK (attempts_before_resend >= 0);
