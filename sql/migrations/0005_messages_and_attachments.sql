-- Messages (inbound, outbound, internal notes) on one timeline per ticket, and their attachments.

CREATE TABLE messages (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id            uuid NOT NULL REFERENCES tickets (id),
    direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    channel              text NOT NULL CHECK (channel IN ('email', 'webform', 'sms', 'chat')),
    classification       text NOT NULL DEFAULT 'customer'
                         CHECK (classification IN ('customer', 'auto_reply', 'bounce', 'feedback_report', 'delivery_report')),
    customer_id          uuid REFERENCES customers (id),
    author_agent_id      uuid REFERENCES agents (id),
    inbound_payload_id   uuid REFERENCES inbound_payloads (id),
    -- The sending system's own id for the message (SMS SID, LINE message id, email Message-ID):
    -- the same one arriving twice is the same message.
    provider             text NOT NULL DEFAULT '',
    provider_message_id  text CHECK (length(provider_message_id) <= 1000),
    from_address         text CHECK (length(from_address) <= 1000),
    to_addresses         text[] NOT NULL DEFAULT '{}',
    subject              text CHECK (length(subject) <= 2000),
    body_text            text NOT NULL DEFAULT '',
    body_html            text,
    quoted_text          text,
    email_message_id     text CHECK (length(email_message_id) <= 1000),
    in_reply_to          text,
    email_references     text[] NOT NULL DEFAULT '{}',
    threading_reason     text,
    metadata             jsonb NOT NULL DEFAULT '{}',
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (direction <> 'inbound' OR customer_id IS NOT NULL),
    CHECK (direction = 'inbound' OR author_agent_id IS NOT NULL)
);

CREATE UNIQUE INDEX messages_provider_message_id
    ON messages (channel, provider, provider_message_id)
    WHERE direction = 'inbound' AND provider_message_id IS NOT NULL;
CREATE INDEX messages_ticket_timeline ON messages (ticket_id, created_at, id);
CREATE INDEX messages_customer ON messages (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
-- Threading looks replies up by the Message-ID they answer, ours or the customer's.
CREATE INDEX messages_email_message_id ON messages (email_message_id) WHERE email_message_id IS NOT NULL;

CREATE TABLE attachments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id   uuid NOT NULL REFERENCES messages (id),
    -- The decoded name as the sender gave it: data to show, never a path on any file system.
    filename     text NOT NULL CHECK (length(filename) <= 1000),
    media_type   text NOT NULL CHECK (length(media_type) <= 255),
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    content_id   text CHECK (length(content_id) <= 1000),
    inline       boolean NOT NULL DEFAULT false,
    content      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (size = length(content))
);

CREATE INDEX attachments_message ON attachments (message_id);
