-- The live customer owning an identity, merges followed, with its row share-locked for the rest of the
-- transaction (a merge running now finishes first, or waits for the transaction and then moves what
-- it wrote). `live` is false when a merge committed between the lookup and the lock: the caller looks
-- again with a new snapshot. One definition for IdentityStore.owner and for the first read of a mail
-- (the replay lookup), which asks it in the same statement and so saves a round trip per mail.
--
-- VOLATILE, as a locking read must be: its query takes the snapshot of the statement calling it.
CREATE FUNCTION identity_owner(identity_kind text, identity_value text) RETURNS TABLE (customer_id uuid, live boolean)
LANGUAGE sql VOLATILE AS $$
    SELECT c.id, c.merged_into IS NULL FROM customers c
    WHERE c.id = (SELECT customer_survivor(i.customer_id) FROM customer_identities i
                  WHERE i.kind = identity_kind AND i.value = identity_value)
    FOR SHARE OF c
$$;
