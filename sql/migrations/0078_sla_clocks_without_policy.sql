-- A solved ticket whose SLA policy was deleted keeps the due times it was judged by (the SLA report
-- reads them). Reopened, no clock runs for it any more: nothing would move those due times again,
-- and every later wait would show them as a breach of hours or days, in the queue and the report.
-- The clocks' own trigger (0074) leaves a ticket without a policy alone, so this one stops them.
CREATE OR REPLACE FUNCTION tickets_sla_clocks_stop_without_policy() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.first_response_due_at := NULL;
    NEW.first_response_warn_at := NULL;
    NEW.next_response_due_at := NULL;
    NEW.next_response_warn_at := NULL;
    NEW.resolution_due_at := NULL;
    NEW.resolution_warn_at := NULL;
    NEW.sla_paused_at := NULL;
    NEW.resolution_paused_at := NULL;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS tickets_sla_clocks_stop_without_policy ON tickets;
CREATE TRIGGER tickets_sla_clocks_stop_without_policy BEFORE UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (NEW.sla_policy_id IS NULL AND OLD.status IN ('solved', 'closed') AND NEW.status NOT IN ('solved', 'closed'))
    EXECUTE FUNCTION tickets_sla_clocks_stop_without_policy();
