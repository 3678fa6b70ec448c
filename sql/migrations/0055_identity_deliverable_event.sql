-- A customer writing in from an address a bounce marked undeliverable shows the mailbox works again
-- (a carrier's reception filter fixed, a full mailbox emptied): ingest clears the mark and says so.
INSERT INTO event_types (name, description) VALUES
    ('identity.deliverable', 'A customer wrote in from an address marked undeliverable: it is deliverable again.')
ON CONFLICT (name) DO NOTHING;
