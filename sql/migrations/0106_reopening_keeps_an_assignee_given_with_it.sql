-- A reopening that names its assignee (a supervisor's PATCH of status and assignee together) keeps
-- the one it names. 0105's trigger took off any offline assignee as the ticket reopened, the one
-- the same request had just given it too: the ticket came back unassigned while the request's own
-- event said it was assigned. Only an assignee the reopening left as it was is taken off (the
-- customer wrote again, a reply bounced, an agent reopened their own ticket). The rest is 0105's.
CREATE OR REPLACE FUNCTION tickets_reopened_without_departed_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.assignee_id IS NOT DISTINCT FROM OLD.assignee_id
       AND NOT EXISTS (SELECT FROM agents WHERE id = NEW.assignee_id AND active AND availability <> 'offline') THEN
        INSERT INTO events (type, ticket_id, customer_id, data)
        VALUES ('ticket.updated', NEW.id, NEW.customer_id,
                jsonb_build_object('changes', jsonb_build_object('assignee_id', jsonb_build_object('from', NEW.assignee_id)),
                                   'version', NEW.version));
        NEW.assignee_id := NULL;
    END IF;
    RETURN NEW;
END
$$;
