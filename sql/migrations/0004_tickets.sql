-- Tickets: one customer's matter, whatever channels it runs over.

CREATE TABLE tickets (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The human reference put in outgoing subjects ("[#1234]") and Reply-To addresses.
    number                    bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    customer_id               uuid NOT NULL REFERENCES customers (id),
    subject                   text NOT NULL DEFAULT '' CHECK (length(subject) <= 2000),
    status                    text NOT NULL DEFAULT 'new'
                              CHECK (status IN ('new', 'open', 'pending', 'on_hold', 'solved', 'closed')),
    priority                  text NOT NULL DEFAULT 'normal'
                              CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    priority_reason           text,
    channel                   text NOT NULL CHECK (channel IN ('email', 'webform', 'sms', 'chat')),
    category                  text CHECK (length(category) <= 200),
    tags                      text[] NOT NULL DEFAULT '{}',
    assignee_id               uuid REFERENCES agents (id),
    -- The claim is a lease: who may answer now, and until when. Taken under the row lock.
    claim_agent_id            uuid REFERENCES agents (id),
    claim_expires_at          timestamptz,
    related_ticket_id         uuid REFERENCES tickets (id),
    first_response_due_at     timestamptz,
    first_responded_at        timestamptz,
    resolution_due_at         timestamptz,
    last_customer_message_at  timestamptz,
    solved_at                 timestamptz,
    closed_at                 timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    -- Bumped by every change; the ETag clients send back in If-Match.
    version                   bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    CHECK ((claim_agent_id IS NULL) = (claim_expires_at IS NULL)),
    CHECK (related_ticket_id <> id)
);

CREATE INDEX tickets_customer ON tickets (customer_id, number DESC);
CREATE INDEX tickets_assignee ON tickets (assignee_id, number DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX tickets_status ON tickets (status, number DESC);
