-- Email identities with the local part's ASCII letters lower-cased (IdentityValue.email): a phone
-- keyboard writes `Taro@docomo.ne.jp` one day and `taro@docomo.ne.jp` the next, and every provider
-- our customers write from delivers both to one mailbox, yet the two spellings made two customers.
-- New identities are stored lower-cased; this converts those already stored. Only A–Z change (the
-- domain is lower-cased already, since 0062; a non-ASCII local part keeps its case).
--
-- Oldest first, never onto an address another identity already holds, so that no customer loses an
-- identity. An identity left in its old spelling is no longer found by any lookup (the mailbox's
-- mail finds the lower-cased one); when it belongs to another customer, the two customers are one
-- person, for a supervisor to merge: a `customer.merge_suggested` event says so, once.

WITH candidates AS (
    SELECT i.id, translate(i.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') AS canonical,
           row_number() OVER (PARTITION BY translate(i.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                              ORDER BY i.created_at, i.id) AS nth
    FROM customer_identities i
    WHERE i.kind = 'email' AND i.value ~ '[A-Z]'
)
UPDATE customer_identities i SET value = c.canonical
FROM candidates c
WHERE i.id = c.id AND c.nth = 1
  AND NOT EXISTS (SELECT FROM customer_identities o WHERE o.kind = 'email' AND o.value = c.canonical);

INSERT INTO events (type, customer_id, data)
SELECT 'customer.merge_suggested', left_over.customer_id,
       jsonb_build_object('other_customer_id', holder.customer_id, 'kind', 'email', 'value', left_over.value, 'channel', 'email')
FROM customer_identities left_over
JOIN customer_identities holder
  ON holder.kind = 'email'
 AND holder.value = translate(left_over.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE left_over.kind = 'email' AND left_over.value ~ '[A-Z]'
  AND holder.customer_id <> left_over.customer_id
  -- Run again (a migration is re-runnable), it suggests nothing twice.
  AND NOT EXISTS (SELECT FROM events e
                  WHERE e.type = 'customer.merge_suggested' AND e.customer_id = left_over.customer_id
                    AND e.data ->> 'value' = left_over.value AND e.data ->> 'other_customer_id' = holder.customer_id::text)
ORDER BY left_over.created_at, left_over.id;
