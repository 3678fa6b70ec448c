-- Replies agents draft and send, and the outbox that hands each sent reply to delivery exactly once.

CREATE TABLE replies (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id         uuid NOT NULL REFERENCES tickets (id),
    author_agent_id   uuid NOT NULL REFERENCES agents (id),
    channel           text NOT NULL CHECK (channel IN ('email', 'webform', 'sms', 'chat')),
    -- Identities of the ticket's customer (checked again at send time).
    recipients        text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 50),
    subject           text CHECK (length(subject) <= 2000),
    body_text         text NOT NULL DEFAULT '' CHECK (length(body_text) <= 200000),
    -- draft → queued once sent; submitted/approved belong to the approval flow.
    state             text NOT NULL DEFAULT 'draft'
                      CHECK (state IN ('draft', 'submitted', 'approved', 'queued', 'sent', 'failed')),
    -- The timeline entry the reply became when it was sent.
    message_id        uuid UNIQUE REFERENCES messages (id),
    version           bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz,
    CHECK ((state IN ('queued', 'sent', 'failed')) = (message_id IS NOT NULL))
);

CREATE INDEX replies_ticket ON replies (ticket_id, created_at);

-- One row per sent reply, written in the transaction that sends it. The delivery worker takes rows
-- from here; the fixed Message-ID makes a retried delivery the same mail, never a second one.
CREATE TABLE outbox (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reply_id          uuid NOT NULL UNIQUE REFERENCES replies (id),
    channel           text NOT NULL CHECK (channel IN ('email', 'webform', 'sms', 'chat')),
    recipients        text[] NOT NULL,
    email_message_id  text NOT NULL UNIQUE,
    state             text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz
);

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'queued';
