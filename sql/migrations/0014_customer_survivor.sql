-- The customer an id now stands for: itself, or the survivor at the end of its chain of merges.
-- Lookups, ingest and the API all follow merges through this one definition.
CREATE FUNCTION customer_survivor(start uuid) RETURNS uuid
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain (id, merged_into, depth) AS (
        SELECT id, merged_into, 0 FROM customers WHERE id = start
      UNION ALL
        SELECT c.id, c.merged_into, chain.depth + 1
        FROM customers c JOIN chain ON c.id = chain.merged_into
        WHERE chain.depth < 32
    )
    SELECT id FROM chain WHERE merged_into IS NULL LIMIT 1
$$;
