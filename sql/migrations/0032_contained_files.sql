-- An attached message (a forwarded mail, a bounce's copy) is stored once, as the message; the files
-- inside it are listed here under it (name, type, size), not stored or listed a second time beside it.
ALTER TABLE attachments ADD COLUMN contained jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(contained) = 'array' AND jsonb_array_length(contained) <= 1000);
