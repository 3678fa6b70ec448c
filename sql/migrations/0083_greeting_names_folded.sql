-- The greeting check (SendChecks.greetingFindings) compares the name a reply greets with customers'
-- display names. Both sides now fold compatibility forms first (NFKC: ＳＡＴＯ is SATO, ｻﾄｳ is サトウ,
-- the ideographic space a space), as `SendGuard.normalizedName` does, so a name typed full-width or
-- in half-width kana matches its stored form.
--
-- `customer_greeting_name` is the whole name so folded, without spaces, case folded: "佐藤次郎".
-- Its index (C collation, so a range on it is a prefix search) finds a customer stored without a
-- space between the names (a single-field web form's "佐藤次郎") when a reply greets the family name
-- alone ("佐藤様"), which `customer_name_parts` cannot split.

CREATE OR REPLACE FUNCTION customer_greeting_name(display_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT lower(regexp_replace(normalize(display_name, NFKC), '[[:space:]　]', '', 'g'))
$$;

CREATE OR REPLACE FUNCTION customer_name_parts(display_name text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN display_name IS NULL THEN '{}'::text[]
                ELSE array_remove(regexp_split_to_array(lower(normalize(display_name, NFKC)), '[[:space:]　]+'), '')
                     || customer_greeting_name(display_name) END
$$;

-- The function under the index changed: the index is built again from it.
DROP INDEX IF EXISTS customers_name_parts;
CREATE INDEX customers_name_parts ON customers USING gin (customer_name_parts(display_name))
    WHERE display_name IS NOT NULL;

CREATE INDEX IF NOT EXISTS customers_greeting_name ON customers ((customer_greeting_name(display_name) COLLATE "C"))
    WHERE display_name IS NOT NULL;
