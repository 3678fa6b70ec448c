-- Webhooks: endpoints that follow the event feed, each at its own position, and a log of every
-- delivery attempt.

CREATE TABLE webhook_endpoints (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url               text NOT NULL CHECK (url <> '' AND length(url) <= 2000),
    description       text CHECK (length(description) <= 500),
    -- Empty: every event type.
    event_types       text[] NOT NULL DEFAULT '{}',
    -- Standard Webhooks secrets (`whsec_…`), newest first; every one signs, so a receiver can rotate.
    secrets           text[] NOT NULL CHECK (cardinality(secrets) BETWEEN 1 AND 5),
    active            boolean NOT NULL DEFAULT true,
    disabled_reason   text,
    disabled_at       timestamptz,
    -- Failed attempts in a row; the endpoint is disabled at the configured limit.
    failure_streak    integer NOT NULL DEFAULT 0 CHECK (failure_streak >= 0),
    -- The feed position of the last event this endpoint was sent (or passed over by its filter): its
    -- next event waits until this one succeeded, so a receiver sees events in order.
    cursor_xid        xid8 NOT NULL,
    cursor_event      bigint NOT NULL,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claimed_by        text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at) WHERE active;

CREATE TABLE webhook_deliveries (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     bigint NOT NULL,
    -- The Standard Webhooks `webhook-id`: the same for every attempt of one event, so receivers dedupe.
    webhook_id   text NOT NULL,
    attempt      integer NOT NULL CHECK (attempt > 0),
    -- The receiver's HTTP status; NULL when there was none (refused, timed out, blocked address).
    status       integer,
    error        text,
    duration_ms  integer NOT NULL DEFAULT 0,
    -- Sent again on request (POST …/redeliver), outside the endpoint's order.
    manual       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);

INSERT INTO event_types (name, description) VALUES
    ('webhook.created', 'An admin added a webhook endpoint.'),
    ('webhook.updated', 'An admin changed a webhook endpoint (address, event types, secrets, re-enabled).'),
    ('webhook.deleted', 'An admin removed a webhook endpoint.'),
    ('webhook.disabled', 'A webhook endpoint failed too many times in a row and was disabled.');

-- Retention: old events may be removed, by the retention job only (it sets madoguchi.retention in
-- its own transaction); everything else still cannot change history.
CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('madoguchi.retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
