-- One definition of the channels a message comes or goes by, instead of a CHECK repeated per table.
-- A new channel is then one ALTER DOMAIN.

-- ticket_overview was read by nothing; reports are views of their own (sql/views).
DROP VIEW IF EXISTS ticket_overview;

CREATE DOMAIN channel AS text CHECK (VALUE IN ('email', 'webform', 'sms', 'chat'));

ALTER TABLE inbound_payloads DROP CONSTRAINT inbound_payloads_channel_check, ALTER COLUMN channel TYPE channel;
ALTER TABLE tickets DROP CONSTRAINT tickets_channel_check, ALTER COLUMN channel TYPE channel;
ALTER TABLE messages DROP CONSTRAINT messages_channel_check, ALTER COLUMN channel TYPE channel;
ALTER TABLE replies DROP CONSTRAINT replies_channel_check, ALTER COLUMN channel TYPE channel;
ALTER TABLE outbox DROP CONSTRAINT outbox_channel_check, ALTER COLUMN channel TYPE channel;

ALTER TABLE priority_rules
    DROP CONSTRAINT priority_rules_channels_check,
    ALTER COLUMN channels DROP DEFAULT,
    ALTER COLUMN channels TYPE channel[] USING channels::channel[],
    ALTER COLUMN channels SET DEFAULT '{}';
