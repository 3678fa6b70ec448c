-- Every request body a gateway pushes in, byte for byte, written before anything it produces.

CREATE TABLE inbound_payloads (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at          timestamptz NOT NULL DEFAULT now(),
    channel              text NOT NULL CHECK (channel IN ('email', 'webform', 'sms', 'chat')),
    provider             text NOT NULL DEFAULT '' CHECK (length(provider) <= 100),
    provider_message_id  text CHECK (length(provider_message_id) <= 1000),
    -- Idempotency-Key as sent, with the SHA-256 of the request it came with: the same key with another
    -- body is refused (422) rather than answered with the first body's result.
    idempotency_key      text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_fingerprint  bytea CHECK (length(request_fingerprint) = 32),
    api_key_id           uuid REFERENCES api_keys (id),
    content_type         text CHECK (length(content_type) <= 255),
    body                 bytea NOT NULL,
    -- rejected: refused before processing (bad signature); kept for the audit trail only.
    parse_status         text NOT NULL DEFAULT 'pending'
                         CHECK (parse_status IN ('pending', 'parsed', 'failed', 'rejected')),
    parse_error          text,
    -- The answer given the first time, replayed verbatim to a retrying gateway.
    response_status      smallint CHECK (response_status BETWEEN 100 AND 599),
    response_body        jsonb,
    processed_at         timestamptz,
    CHECK ((idempotency_key IS NULL) = (request_fingerprint IS NULL)),
    CHECK (parse_status <> 'failed' OR parse_error IS NOT NULL)
);

-- A rejected request must not reserve the key its legitimate retry will carry.
CREATE UNIQUE INDEX inbound_payloads_idempotency_key
    ON inbound_payloads (channel, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND parse_status <> 'rejected';

CREATE INDEX inbound_payloads_received_at ON inbound_payloads (received_at);
CREATE INDEX inbound_payloads_failed ON inbound_payloads (received_at) WHERE parse_status = 'failed';
