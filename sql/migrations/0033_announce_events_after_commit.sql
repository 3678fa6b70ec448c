-- Followers are told about new events by the service after the writing transaction committed
-- (Events/EventAnnouncer.swift), no longer by a trigger inside it: PostgreSQL serializes the commits
-- of transactions that NOTIFY on one global lock held across their WAL flush, so with the trigger
-- every transaction that wrote an event (every ingest, every claim) waited for the one before it.
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();
