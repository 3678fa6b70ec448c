-- Replies still in the outbox, oldest first (`GET /v1/replies?state=queued`): few at any time while
-- delivery runs, many when it does not (no relay configured, a relay down), which is when someone
-- looks. The list scanned every reply (27 ms at 221,000 replies, growing with the table).
CREATE INDEX IF NOT EXISTS replies_queued ON replies (created_at, id) WHERE state = 'queued';
