-- An Idempotency-Key is the caller's: two gateways (two API keys) that happen to pick the same key
-- are two requests. Scoped by channel only, the second gateway's request was answered with the
-- first one's outcome (its customer and ticket ids, which `GET /v1/inbound/{id}` hides from it) or
-- refused as a reused key naming the other gateway's payload. A request without an API key (a
-- provider webhook, authenticated by its signature) keeps the channel's scope.
DROP INDEX inbound_payloads_idempotency_key;
CREATE UNIQUE INDEX inbound_payloads_idempotency_key
    ON inbound_payloads (channel, api_key_id, idempotency_key) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL AND parse_status <> 'rejected';
