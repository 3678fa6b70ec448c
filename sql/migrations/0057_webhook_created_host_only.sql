-- `webhook.created` used to carry the endpoint's whole URL, and the feed keeps events (by default
-- for good): Slack-like URLs hold their token. Earlier events get the host only, as new ones have.
-- The one rewrite of history the service makes: a redaction, in this migration's transaction, with
-- the append-only trigger off for exactly this statement.
ALTER TABLE events DISABLE TRIGGER events_append_only;
UPDATE events
SET data = jsonb_build_object('webhook_id', data->'webhook_id', 'host', coalesce(substring(data->>'url' from '://([^/:?#@]+)'), ''))
WHERE type = 'webhook.created' AND data ? 'url';
ALTER TABLE events ENABLE TRIGGER events_append_only;
