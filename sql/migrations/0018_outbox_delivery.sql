-- Delivering the outbox: leases and attempts, the point of no return, per-recipient results, the
-- states a delivery ends in, and files attached to replies.

ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'cancelled', 'held'));

ALTER TABLE outbox
    -- Who is delivering the row now and until when; an expired lease lets another worker continue.
    ADD COLUMN claimed_by        text,
    ADD COLUMN lease_expires_at  timestamptz,
    -- Set in its own commit just before the step that hands the message over for good (SMTP's final
    -- dot, a provider's API call). A lease that expires with it set means the handover may have
    -- happened: the row is held for a person and never sent again by itself.
    ADD COLUMN handover_at       timestamptz,
    -- The composed mail, fixed at the first attempt, so that every retry sends the same bytes.
    ADD COLUMN message           bytea,
    -- The relay's answer to the handover (its queue id) or the provider's message id.
    ADD COLUMN relay_response    text,
    ADD COLUMN provider          text,
    ADD COLUMN provider_message_id text,
    -- recipient → {"status": "sent"|"failed"|"pending", "reply": "..."}; retries go to pending ones only.
    ADD COLUMN recipient_results jsonb NOT NULL DEFAULT '{}',
    -- Sent with every try of an API that deduplicates on it (LINE's X-Line-Retry-Key).
    ADD COLUMN retry_key         uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN held_reason       text,
    ADD COLUMN updated_at        timestamptz NOT NULL DEFAULT now();

CREATE INDEX outbox_leases ON outbox (lease_expires_at) WHERE state = 'sending';

-- A reply's delivery ends sent, failed, or bounced (the relay took it; a bounce came back later).
ALTER TABLE replies DROP CONSTRAINT replies_check;
ALTER TABLE replies DROP CONSTRAINT replies_state_check;
ALTER TABLE replies ADD CONSTRAINT replies_state_check
    CHECK (state IN ('draft', 'submitted', 'approved', 'queued', 'sent', 'failed', 'bounced'));
ALTER TABLE replies ADD CONSTRAINT replies_message_once_sent
    CHECK ((state IN ('queued', 'sent', 'failed', 'bounced')) = (message_id IS NOT NULL));
-- Sending to an identity known to be undeliverable was confirmed by the sender.
ALTER TABLE replies ADD COLUMN confirmed_undeliverable boolean NOT NULL DEFAULT false;

-- Files an agent attaches to a reply; copied onto the outbound message when it is sent.
CREATE TABLE reply_attachments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reply_id    uuid NOT NULL REFERENCES replies (id),
    filename    text NOT NULL CHECK (filename <> '' AND length(filename) <= 255),
    media_type  text NOT NULL CHECK (length(media_type) <= 255),
    size        bigint NOT NULL CHECK (size >= 0),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (size = length(content))
);

CREATE INDEX reply_attachments_reply ON reply_attachments (reply_id, created_at);

INSERT INTO event_types (name, description) VALUES
    ('reply.delivered', 'The relay or provider took a reply for its recipients (some may have been refused).'),
    ('reply.failed', 'A reply could not be delivered to any recipient; the ticket is flagged `delivery-failed`.'),
    ('reply.bounced', 'A bounce came back for a reply the relay had taken.'),
    ('reply.held', 'A reply''s handover may or may not have happened; it waits for a person, never resent by itself.'),
    ('reply.delivery_resolved', 'A person resolved a held delivery: sent again, recorded as sent, or cancelled.');
