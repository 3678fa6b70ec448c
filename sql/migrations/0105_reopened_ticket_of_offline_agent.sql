-- A ticket that reopens (the customer wrote again, a reply bounced) while its assignee is offline
-- stayed theirs: claim-next offers no ticket assigned to someone else, and the assignment worker
-- takes only unassigned ones, so the waiting customer could be reached by nobody until the agent
-- came back (0079 handed back only a departed agent's). Offline counts as gone for this: the
-- ticket goes back to its queue, and the event feed says so beside the reopening. An agent who is
-- `away` (a short break) keeps it. The rest of the function is 0095's (the event names no `to`).
CREATE OR REPLACE FUNCTION tickets_reopened_without_departed_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM agents WHERE id = NEW.assignee_id AND active AND availability <> 'offline') THEN
        INSERT INTO events (type, ticket_id, customer_id, data)
        VALUES ('ticket.updated', NEW.id, NEW.customer_id,
                jsonb_build_object('changes', jsonb_build_object('assignee_id', jsonb_build_object('from', NEW.assignee_id)),
                                   'version', NEW.version));
        NEW.assignee_id := NULL;
    END IF;
    RETURN NEW;
END
$$;
