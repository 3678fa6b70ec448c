-- A LINE event's message is found by LINE's message id (`messages_provider_message_id`), which every
-- delivery of the event carries: keeping it on the event too cost every message event an UPDATE,
-- a round trip of its own, after the message was written.
ALTER TABLE provider_events DROP COLUMN message_id;
