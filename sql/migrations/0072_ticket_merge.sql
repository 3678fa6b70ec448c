-- Ticket merge: a customer who writes twice about one thing (a second mail with a new subject, a
-- chat after a mail) has two tickets, and two agents can answer them, each unaware of the other
-- (二重返信). Merged, the duplicate is closed and points at the ticket that goes on; whatever the
-- customer sends to the duplicate later joins that one.
--
-- `merged_into` always names the last ticket of the chain (a merge into a ticket that is later
-- merged itself moves its pointers on), so following it is one step, never a walk.
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS merged_into uuid REFERENCES tickets (id) CHECK (merged_into <> id);
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS merged_at timestamptz;
CREATE INDEX IF NOT EXISTS tickets_merged_into ON tickets (merged_into) WHERE merged_into IS NOT NULL;

INSERT INTO event_types (name, description) VALUES
    ('ticket.merged', 'A duplicate ticket was merged into another of the same customer: closed, and its later messages join the other.')
ON CONFLICT (name) DO NOTHING;
