-- The tickets whose messages make up one ticket's timeline: the ticket itself and every ticket
-- merged into it. A merge flattens chains (`merged_into` names the last survivor), so one level is
-- all there is. The timeline, the send checks, a reply's default recipient and the outbox's thread
-- lookup all read it through this one definition.
--
-- A set-returning SQL function in FROM is inlined by the planner (one SELECT, not STRICT, not
-- SECURITY DEFINER): `ticket_id IN (SELECT ticket_id FROM ticket_timeline(x))` plans as if the
-- union were written out, an index probe on `tickets (merged_into)`, with no function call per row.
CREATE OR REPLACE FUNCTION ticket_timeline(ticket uuid) RETURNS TABLE (ticket_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT ticket
    UNION ALL
    SELECT merged.id FROM tickets merged WHERE merged.merged_into = ticket
$$;
