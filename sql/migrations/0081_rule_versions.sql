-- Rules are replaced whole (PUT) by supervisors who may work at once: each carries a version, its
-- ETag, so that an edit made from an older read is refused (412) instead of undoing another's.
ALTER TABLE rules ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
