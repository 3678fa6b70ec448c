-- A customer's version, raised by every change made through the API (its details, an identity
-- added, a customer merged into it): its ETag, so that the order system and a supervisor editing
-- the same customer's notes at once get a 412 instead of one overwriting the other. Identities a
-- message brings in (ingest) do not raise it: they never race an edit of the details.
ALTER TABLE customers ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);
