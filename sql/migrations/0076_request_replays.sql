-- `Idempotency-Key` on the API's own writes that must not happen twice: creating a reply and sending
-- it (RequestReplay). A client whose request timed out after the commit retries with the same key
-- and gets the first answer, where it made a second draft (and, once that one was sent too, a
-- second answer to the customer: 二重返信) or, for a send, a 409 it could not tell from failure.
--
-- One row per API key and Idempotency-Key: what the key was used for (`operation` and the
-- request's fingerprint) and the resource it made. Kept a day; a key older than that is new again.
CREATE TABLE IF NOT EXISTS request_replays (
    api_key_id       uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    operation        text NOT NULL CHECK (length(operation) <= 100),
    fingerprint      bytea NOT NULL CHECK (length(fingerprint) = 32),
    resource_id      uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, idempotency_key)
);

CREATE INDEX IF NOT EXISTS request_replays_age ON request_replays (created_at);
