-- Automatic replies (受付確認メール): written by the service's own agent, marked as automatic so that
-- they carry Auto-Submitted (RFC 3834) and count against the per-recipient daily cap.

INSERT INTO agents (id, display_name, active) VALUES ('00000000-0000-4000-8000-00000000a070', 'Madoguchi (automatic)', false)
ON CONFLICT (id) DO NOTHING;

ALTER TABLE replies ADD COLUMN automatic boolean NOT NULL DEFAULT false;
CREATE INDEX replies_automatic_recent ON replies (created_at) WHERE automatic;

INSERT INTO event_types (name, description) VALUES
    ('reply.automatic_withheld', 'An automatic reply was not sent: the sender is a machine, a list, ourselves, or already got enough today.');
