-- The append-only record of every change, written in the transaction that makes the change.

CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Dotted names: ticket.created, message.received, customer.merged, ...
    type         text NOT NULL CHECK (type ~ '^[a-z_]+(\.[a-z_]+)+$'),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    ticket_id    uuid REFERENCES tickets (id),
    customer_id  uuid REFERENCES customers (id),
    message_id   uuid REFERENCES messages (id),
    actor_key_id uuid REFERENCES api_keys (id),
    actor_agent_id uuid REFERENCES agents (id),
    data         jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX events_ticket ON events (ticket_id, id) WHERE ticket_id IS NOT NULL;
CREATE INDEX events_customer ON events (customer_id, id) WHERE customer_id IS NOT NULL;

-- History is not rewritten: the feed and webhooks rely on rows never changing once committed.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();
