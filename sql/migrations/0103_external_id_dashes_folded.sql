-- A member number typed with an input method in 全角 mode often carries the 長音 ー, a minus − or a
-- dash where the order system's id has a hyphen (`CUSTー0002` for `CUST-0002`): ingest and the API
-- now store those as "-" in an id otherwise all ASCII (`IdentityValue.foldingDashes`), and this
-- folds the ids stored before, as 0098 folded full-width ASCII: oldest first, never onto an id
-- another identity already holds; the spelling as typed kept in raw_value; a customer left holding
-- the unfolded spelling while another holds the folded id is suggested for a merge
-- (`customer.merge_suggested`), once. Re-runnable: a second run folds and suggests nothing new.

WITH candidates AS (
    SELECT i.id, translate(i.value, '‐‑‒–—―−ーｰ﹣', '----------') AS folded,
           row_number() OVER (PARTITION BY translate(i.value, '‐‑‒–—―−ーｰ﹣', '----------') ORDER BY i.created_at, i.id) AS nth
    FROM customer_identities i
    WHERE i.kind = 'external' AND i.value ~ '[‐‑‒–—―−ーｰ﹣]' AND i.value ~ '^([[:ascii:]]|[‐‑‒–—―−ーｰ﹣])+$'
)
UPDATE customer_identities i SET raw_value = coalesce(i.raw_value, i.value), value = c.folded
FROM candidates c
WHERE i.id = c.id AND c.nth = 1
  AND NOT EXISTS (SELECT FROM customer_identities o WHERE o.kind = 'external' AND o.value = c.folded);

INSERT INTO events (type, customer_id, data)
SELECT 'customer.merge_suggested', left_over.customer_id,
       jsonb_build_object('other_customer_id', holder.customer_id, 'kind', 'external', 'value', left_over.value, 'channel', 'webform')
FROM customer_identities left_over
JOIN customer_identities holder
  ON holder.kind = 'external' AND holder.value = translate(left_over.value, '‐‑‒–—―−ーｰ﹣', '----------')
WHERE left_over.kind = 'external' AND left_over.value ~ '[‐‑‒–—―−ーｰ﹣]' AND left_over.value ~ '^([[:ascii:]]|[‐‑‒–—―−ーｰ﹣])+$'
  AND holder.customer_id <> left_over.customer_id
  -- Run again, it suggests nothing twice.
  AND NOT EXISTS (SELECT FROM events e
                  WHERE e.type = 'customer.merge_suggested' AND e.customer_id = left_over.customer_id
                    AND e.data ->> 'value' = left_over.value AND e.data ->> 'other_customer_id' = holder.customer_id::text)
ORDER BY left_over.created_at, left_over.id;
