-- A LINE user whose messages a chat gateway relayed (`POST /v1/inbound/chat` with provider `line`)
-- was recorded under the chat identity `line:U…`, and the same user writing through LINE's own
-- webhook under the LINE identity `U…`: two customers for one person, and a reply to the first went
-- to the gateway rather than LINE's push API. Ingest now records both as the LINE identity; the
-- identities recorded before become it too, where the LINE identity is not on record already
-- (where it is, two customers hold the two: merging them is a person's decision, POST /v1/customers/{id}/merge).
UPDATE customer_identities relayed
SET kind = 'line', value = substr(relayed.value, 6)
WHERE relayed.kind = 'chat' AND relayed.value ~ '^line:U[0-9a-f]{32}$'
  AND NOT EXISTS (SELECT 1 FROM customer_identities known WHERE known.kind = 'line' AND known.value = substr(relayed.value, 6));
