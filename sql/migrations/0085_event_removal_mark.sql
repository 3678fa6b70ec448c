-- Where retention has removed the feed up to (EventRetention, its only writer): events go in feed
-- order, (xid, id), a prefix at a time, so every event at or below this position is gone and every
-- one above it is kept. A follower's cursor below it has missed events it can no longer read, and
-- is told so (410 cursor-expired) instead of resuming silently past the gap.
CREATE TABLE IF NOT EXISTS event_removals (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    through_xid xid8 NOT NULL,
    through_id  bigint NOT NULL,
    removed_at  timestamptz NOT NULL DEFAULT now()
);
