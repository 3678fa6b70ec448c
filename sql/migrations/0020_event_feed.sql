-- The event feed. Each event carries the id of the transaction that wrote it; a reader hands out
-- only events of transactions older than every transaction still running (see Events/EventFeed.swift),
-- so an event whose transaction commits late is never skipped, and none is handed out twice.

ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_feed ON events (xid, id);

-- Followers (long polls, streams, the webhook worker) LISTEN here instead of polling: one
-- notification per transaction that wrote events (PostgreSQL folds duplicates), sent at commit.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('madoguchi_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- This installation's identity and the key that signs its feed cursors, made on first use: a cursor
-- from another installation, or a forged one, is told apart from a stale one.
CREATE TABLE installation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id          uuid NOT NULL,
    cursor_key  bytea NOT NULL CHECK (length(cursor_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
