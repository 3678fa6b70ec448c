-- The owners of a message's sender identities, in their order, for ingest's first read
-- (InboundPayloadStore.firstAnswer, ChatIngest.firstRead).
--
-- Those statements read `unnest($kinds, $values)` inline. As prepared statements, their generic
-- plan costs a parameter array at ten rows where a custom plan sees the one or two it holds, so
-- PostgreSQL never settled on the generic plan and planned the statement again on every request:
-- 0.48 ms of planning a mail, a fifth of the database's time per mail at 8 clients
-- (pg_stat_statements, track_planning). Behind a function estimated at one row, the two plans cost
-- the same and the generic one is kept. The loop looks each identity up by its key (an index
-- probe each), whatever the statistics say.

CREATE OR REPLACE FUNCTION identity_owners(kinds text[], identity_values text[])
RETURNS TABLE (n bigint, customer_id uuid, live boolean, undeliverable boolean)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(kinds), 0) LOOP
        n := i;
        -- identity_owner locks the owner (FOR SHARE): no merge moves it before this ingest commits.
        SELECT o.customer_id, o.live INTO customer_id, live FROM identity_owner(kinds[i], identity_values[i]) AS o;
        undeliverable := EXISTS (SELECT 1 FROM customer_identities u
                                 WHERE u.kind = kinds[i] AND u.value = identity_values[i]
                                   AND u.undeliverable_at IS NOT NULL);
        RETURN NEXT;
    END LOOP;
END
$$;
