-- The send guard's greeting check (a reply greeting "佐藤様" on Yamada's ticket) compared the greeted
-- name with every customer's whole display name, computed row by row: a scan of `customers` on
-- every send, under the ticket's row lock. It also missed the commonest greeting, the family name
-- alone ("山田様"), and names of customers merged into another.
--
-- `customer_name_parts` gives the forms a greeting can take of a display name, case folded: each
-- part between spaces (half- or full-width: "山田", "花子"), and the whole name without spaces
-- ("山田花子"), as `SendGuard.normalizedName` writes the greeted name. The index finds the
-- customers a greeted name can mean, merged ones included.

CREATE OR REPLACE FUNCTION customer_name_parts(display_name text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN display_name IS NULL THEN '{}'::text[]
                ELSE array_remove(regexp_split_to_array(lower(display_name), '[[:space:]　]+'), '')
                     || lower(regexp_replace(display_name, '[[:space:]　]', '', 'g')) END
$$;

CREATE INDEX IF NOT EXISTS customers_name_parts ON customers USING gin (customer_name_parts(display_name))
    WHERE display_name IS NOT NULL;
