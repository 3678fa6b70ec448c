-- Customers and the identities (email, phone, order-system id, LINE, chat) that link every channel to one person.

CREATE TABLE customers (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name   text CHECK (length(display_name) <= 500),
    is_vip         boolean NOT NULL DEFAULT false,
    notes          text CHECK (length(notes) <= 20000),
    -- A merged customer keeps its row so that old ids keep answering: lookups follow merged_into.
    merged_into    uuid REFERENCES customers (id),
    merged_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (merged_into <> id),
    CHECK ((merged_into IS NULL) = (merged_at IS NULL))
);

CREATE INDEX customers_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE customer_identities (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id           uuid NOT NULL REFERENCES customers (id),
    kind                  text NOT NULL CHECK (kind IN ('email', 'phone', 'external', 'line', 'chat')),
    -- Normalized for matching: email with its domain lower-cased (the local part as sent), phone in
    -- E.164, chat as "provider:user id". The spelling first seen is kept in raw_value.
    value                 text NOT NULL CHECK (value <> '' AND length(value) <= 512),
    raw_value             text CHECK (length(raw_value) <= 1024),
    verified              boolean NOT NULL DEFAULT false,
    -- Set by a hard bounce or a carrier refusal; replies to it are held back.
    undeliverable_at      timestamptz,
    undeliverable_reason  text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- One identity belongs to one customer: this is what makes concurrent first contacts converge.
    UNIQUE (kind, value),
    CHECK ((undeliverable_at IS NULL) OR (undeliverable_reason IS NOT NULL))
);

CREATE INDEX customer_identities_customer ON customer_identities (customer_id);
