-- Deactivating an agent hands back their open tickets but leaves the solved ones assigned to them
-- (who solved it stays on record). When such a ticket reopens (the customer wrote again, a reply
-- bounced), the queue offers it to nobody: claim-next and the assignment worker take only tickets
-- without an assignee, and its departed assignee never claims it. Reopened, it goes back to the
-- queue, and the event feed says so beside the reopening.
CREATE OR REPLACE FUNCTION tickets_reopened_without_departed_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM agents WHERE id = NEW.assignee_id AND active) THEN
        INSERT INTO events (type, ticket_id, customer_id, data)
        VALUES ('ticket.updated', NEW.id, NEW.customer_id,
                jsonb_build_object('changes', jsonb_build_object('assignee_id', jsonb_build_object('from', NEW.assignee_id, 'to', NULL)),
                                   'version', NEW.version));
        NEW.assignee_id := NULL;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS tickets_reopened_without_departed_assignee ON tickets;
CREATE TRIGGER tickets_reopened_without_departed_assignee BEFORE UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (OLD.status IN ('solved', 'closed') AND NEW.status NOT IN ('solved', 'closed') AND NEW.assignee_id IS NOT NULL)
    EXECUTE FUNCTION tickets_reopened_without_departed_assignee();
