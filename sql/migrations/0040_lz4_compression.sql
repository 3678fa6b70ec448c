-- Large values are compressed with lz4 instead of PostgreSQL's default pglz.
--
-- Every raw mail, message body and attachment over about 2 kB is compressed as it is inserted.
-- perf on `madoguchi bench email` (8 clients) put pglz_compress at 4.4 % of the machine's CPU,
-- the largest single function of the run; lz4 compresses several times faster at a similar ratio.
-- Only rows written from now on use it; rows already stored keep pglz, and both read back alike.
-- A PostgreSQL built without lz4 (every Debian and PGDG build has it) keeps pglz, with a notice.
DO $$
BEGIN
    ALTER TABLE inbound_payloads ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE messages
        ALTER COLUMN body_text SET COMPRESSION lz4,
        ALTER COLUMN body_html SET COMPRESSION lz4,
        ALTER COLUMN visible_text SET COMPRESSION lz4,
        ALTER COLUMN quoted_text SET COMPRESSION lz4;
    ALTER TABLE attachments ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE reply_attachments ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN message SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4; large values stay compressed with pglz';
END
$$;
