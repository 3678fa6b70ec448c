-- A calendar or policy change sets the running clocks of every ticket under it again
-- (`reset_sla_clocks`), and bumped every such ticket's version, whether its due times moved or not:
-- a closed day added for next summer changed the ETag of every open ticket, and each agent's edit
-- in flight (If-Match) failed with 412, with no event saying why. A ticket whose due and warning
-- times all come out as they were keeps its version and updated_at. This trigger fires after the
-- clocks' own (`tickets_sla_clocks_on_update`: same timing, later name), only inside a reset.
CREATE OR REPLACE FUNCTION tickets_sla_reset_keeps_unmoved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.first_response_due_at IS NOT DISTINCT FROM OLD.first_response_due_at
       AND NEW.first_response_warn_at IS NOT DISTINCT FROM OLD.first_response_warn_at
       AND NEW.next_response_due_at IS NOT DISTINCT FROM OLD.next_response_due_at
       AND NEW.next_response_warn_at IS NOT DISTINCT FROM OLD.next_response_warn_at
       AND NEW.resolution_due_at IS NOT DISTINCT FROM OLD.resolution_due_at
       AND NEW.resolution_warn_at IS NOT DISTINCT FROM OLD.resolution_warn_at THEN
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS tickets_sla_reset_keeps_unmoved ON tickets;
CREATE TRIGGER tickets_sla_reset_keeps_unmoved BEFORE UPDATE OF sla_policy_id ON tickets
    FOR EACH ROW
    WHEN (current_setting('madoguchi.sla_reset', true) = 'on')
    EXECUTE FUNCTION tickets_sla_reset_keeps_unmoved();
