-- The messages a mail's thread headers (In-Reply-To, References) name, with their tickets'
-- customers: what `EmailThreader` decides from (`EmailThreader.HeaderMatch`). The first read of
-- every message (`InboundPayloadStore.firstAnswer`) calls it, so that the planner costs that read
-- the same however many ids a mail names (none, for most messages). Written inline, the lookup of
-- two ids beat the generic plan's guess of ten, and the read was planned afresh at every mail with
-- thread headers (0.5 ms of planning for 0.2 ms of work). The lookup's own plan does not depend on
-- the number of ids (a probe of messages_email_message_id per id, then the ticket by its key), so
-- its generic plan is used from the start: planned anew each time, planning the two tables (and
-- their 30 indexes) took 0.45 ms for 0.02 ms of work. A plan made while `messages` is nearly empty
-- scans it whole; the next analyze of the table replaces it.
CREATE FUNCTION email_thread_matches(ids text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN (
        SELECT jsonb_agg(jsonb_build_object(
                   'email_message_id', m.email_message_id, 'ticket_id', m.ticket_id, 'ticket_customer_id', t.customer_id,
                   'message_customer_id', m.customer_id, 'from_address', m.from_address, 'to_addresses', m.to_addresses))
        FROM messages m JOIN tickets t ON t.id = m.ticket_id
        WHERE m.email_message_id = ANY(ids));
END
$$;
