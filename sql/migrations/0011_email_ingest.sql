-- Email ingest: what threading needs to find a ticket, and the outcome kept on each payload.

-- The subject with Re:/Fwd:/転送:/返信: and our [#1234] token stripped, so that carrier mail, which
-- drops In-Reply-To and References, can still find the ticket it answers.
ALTER TABLE tickets ADD COLUMN thread_subject text CHECK (length(thread_subject) <= 2000);
CREATE INDEX tickets_thread_subject ON tickets (customer_id, thread_subject) WHERE status <> 'closed';

-- What the payload became, for GET /v1/inbound/{id} and the audit trail (null until processed, and
-- for payloads that produced no message: a bounce with no ticket, an unreadable mail).
ALTER TABLE inbound_payloads ADD COLUMN message_id uuid REFERENCES messages (id);
-- The stored bytes' digest, computed by PostgreSQL so that it can never disagree with them.
ALTER TABLE inbound_payloads ADD COLUMN sha256 bytea GENERATED ALWAYS AS (sha256(body)) STORED;

-- The new writing of an inbound message, separated from the quoted history and signature
-- (quoted_text); body_text keeps the whole text as received.
ALTER TABLE messages ADD COLUMN visible_text text;

-- A retried delivery of a mail (same Message-ID) finds the first payload's answer here, whether or
-- not that payload made a message (a bounce with no ticket makes none).
CREATE INDEX inbound_payloads_provider_message_id ON inbound_payloads (channel, provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL AND parse_status = 'parsed';

-- Attachments in the order the sender gave them (all of a message's share its transaction's time).
ALTER TABLE attachments ADD COLUMN position integer NOT NULL DEFAULT 0 CHECK (position >= 0);
