-- Provider-format webhooks (Twilio, Vonage, LINE): the events a webhook carries, each taken once however
-- often the provider redelivers it, and SMS parts waiting for the rest of their message.

-- One row per provider event taken in. A redelivered event finds its row (or waits on the
-- uncommitted one) and is skipped.
CREATE TABLE provider_events (
    provider            text NOT NULL CHECK (length(provider) BETWEEN 1 AND 100),
    event_id            text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    event_type          text NOT NULL CHECK (length(event_type) <= 100),
    inbound_payload_id  uuid NOT NULL REFERENCES inbound_payloads (id),
    -- The message the event became, if any (follow, unfollow and postback events make none).
    message_id          uuid REFERENCES messages (id),
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- A long text arrives from some providers (Vonage) as separate parts sharing a reference. Each part is
-- kept here until all have come; then they become one message and point at it.
CREATE TABLE sms_parts (
    provider             text NOT NULL,
    provider_message_id  text NOT NULL CHECK (length(provider_message_id) BETWEEN 1 AND 200),
    sender               text NOT NULL,
    reference            text NOT NULL CHECK (length(reference) <= 100),
    part_count           integer NOT NULL CHECK (part_count BETWEEN 2 AND 255),
    part_number          integer NOT NULL CHECK (part_number BETWEEN 1 AND part_count),
    body                 text NOT NULL,
    inbound_payload_id   uuid NOT NULL REFERENCES inbound_payloads (id),
    message_id           uuid REFERENCES messages (id),
    received_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_message_id)
);

CREATE INDEX sms_parts_waiting ON sms_parts (provider, sender, reference, part_count, received_at)
    WHERE message_id IS NULL;

-- Delivery status callbacks find our outbound message by the provider's id for it.
CREATE INDEX messages_outbound_provider_id ON messages (provider, provider_message_id)
    WHERE direction = 'outbound' AND provider_message_id IS NOT NULL;
