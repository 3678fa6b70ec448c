-- The owners of a message's contacts, share-locked in id order (the order a merge locks customers
-- in), not in the contacts' order.
--
-- A web form or chat whose email is one customer's and whose phone is another's (the case flagged
-- `merge-suggested`) locked the email's owner, then the phone's. A supervisor merging those two at
-- that moment locked them by id: when the phone's owner had the lower id, each waited for the other
-- (a deadlock; PostgreSQL rolled one back and the request was tried again a second later). Now the
-- survivors are found first, unlocked, then locked together in id order; each is then read again:
-- `live` is false when a merge committed in between, and the caller looks again (as before).
CREATE OR REPLACE FUNCTION identity_owners(kinds text[], identity_values text[])
RETURNS TABLE (n bigint, customer_id uuid, live boolean, undeliverable boolean)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
DECLARE
    owners uuid[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(cardinality(kinds), 0) LOOP
        owners[i] := (SELECT customer_survivor(ci.customer_id) FROM customer_identities ci
                      WHERE ci.kind = kinds[i] AND ci.value = identity_values[i]);
    END LOOP;
    -- No merge moves them before this ingest commits.
    PERFORM 1 FROM customers c WHERE c.id = ANY (owners) ORDER BY c.id FOR SHARE;
    FOR i IN 1 .. coalesce(cardinality(kinds), 0) LOOP
        n := i;
        customer_id := owners[i];
        -- A new statement, a new snapshot: a merge that committed before the lock was granted shows.
        live := (SELECT c.merged_into IS NULL FROM customers c WHERE c.id = owners[i]);
        undeliverable := EXISTS (SELECT 1 FROM customer_identities u
                                 WHERE u.kind = kinds[i] AND u.value = identity_values[i]
                                   AND u.undeliverable_at IS NOT NULL);
        RETURN NEXT;
    END LOOP;
END
$$;
