-- The people who answer (agents) and the keys every caller authenticates with.

CREATE TABLE agents (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name       text NOT NULL CHECK (display_name <> '' AND length(display_name) <= 200),
    email              text CHECK (length(email) <= 320),
    -- Novices whose replies go through a supervisor's approval (承認フロー) before they are sent.
    requires_approval  boolean NOT NULL DEFAULT false,
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    role          text NOT NULL CHECK (role IN ('gateway', 'agent', 'supervisor', 'dashboard', 'order_system', 'admin')),
    -- The public part of the key ("mdg_" + 8 characters), used to find the row; the secret is only
    -- ever stored as the SHA-256 of the whole key, compared in constant time.
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^mdg_[A-Za-z0-9]{8}$'),
    secret_hash   bytea NOT NULL CHECK (length(secret_hash) = 32),
    agent_id      uuid REFERENCES agents (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    -- Agents and supervisors act as a person: their replies, claims and notes are attributed to one.
    CHECK ((role IN ('agent', 'supervisor')) = (agent_id IS NOT NULL))
);
