-- What the receiving side said about a sent reply after the relay took it, short of a bounce: delay
-- notices ("still trying, 4.4.7"). They never fail the reply or mark anyone undeliverable; an agent
-- reading the reply sees that the customer has not received it yet, and why.
ALTER TABLE outbox ADD COLUMN notices jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(notices) = 'array' AND jsonb_array_length(notices) <= 50);
