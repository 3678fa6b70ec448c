-- Rules that set a new ticket's priority (and may send its replies through approval) from what it says.

CREATE TABLE priority_rules (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 200),
    priority           text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    -- Each list is "any of these"; every non-empty condition must hold. Keywords are matched in the
    -- subject and body after NFKC folding (full-width and half-width alike) and lower-casing.
    keywords           text[] NOT NULL DEFAULT '{}',
    channels           text[] NOT NULL DEFAULT '{}',
    categories         text[] NOT NULL DEFAULT '{}',
    vip_only           boolean NOT NULL DEFAULT false,
    -- Replies on tickets this rule matched need a supervisor's approval, whoever writes them.
    requires_approval  boolean NOT NULL DEFAULT false,
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(keywords) > 0 OR cardinality(channels) > 0 OR cardinality(categories) > 0 OR vip_only),
    CHECK (channels <@ ARRAY['email', 'webform', 'sms', 'chat'])
);

-- Set when a rule with requires_approval matched the ticket: the rule's name, for the reason shown.
ALTER TABLE tickets ADD COLUMN approval_rule text;
