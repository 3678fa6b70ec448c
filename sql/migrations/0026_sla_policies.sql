-- SLA policies: per priority × channel targets for first response, next response and resolution,
-- counted in business time on a calendar (migration 0025). The default policy applies to every
-- ticket opened while it is the default; with none, tickets have no clocks.

CREATE TABLE sla_policies (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    calendar_id       uuid NOT NULL REFERENCES business_calendars (id),
    -- A clock turns `warning` once this fraction of its target has passed.
    warning_fraction  double precision NOT NULL DEFAULT 0.75 CHECK (warning_fraction > 0 AND warning_fraction < 1),
    is_default        boolean NOT NULL DEFAULT false,
    version           bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sla_policies_one_default ON sla_policies (is_default) WHERE is_default;

-- A target row for a priority, on one channel or (channel NULL) on every channel without a row of
-- its own. A NULL target means that clock does not run.
CREATE TABLE sla_targets (
    policy_id               uuid NOT NULL REFERENCES sla_policies (id) ON DELETE CASCADE,
    priority                text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    channel                 text CHECK (channel IN ('email', 'webform', 'sms', 'chat')),
    first_response_seconds  integer CHECK (first_response_seconds > 0),
    next_response_seconds   integer CHECK (next_response_seconds > 0),
    resolution_seconds      integer CHECK (resolution_seconds > 0),
    UNIQUE NULLS NOT DISTINCT (policy_id, priority, channel)
);

-- Each clock has a due time and a warning time; the response clock that runs now (first response
-- until we first answer, then next response whenever the customer waits again) is kept as
-- response_due_at / response_warn_at, which the queue orders by. Clocks run only while the customer
-- waits (awaiting_reply_since, migration 0024) for the response clocks, and until solved for
-- resolution; all of them stop while the ticket is pending (sla_paused_at) and resume, pushed back by
-- the business time spent waiting on the customer.
ALTER TABLE tickets
    ADD COLUMN sla_policy_id          uuid REFERENCES sla_policies (id) ON DELETE SET NULL,
    ADD COLUMN first_response_warn_at timestamptz,
    ADD COLUMN next_response_due_at   timestamptz,
    ADD COLUMN next_response_warn_at  timestamptz,
    ADD COLUMN resolution_warn_at     timestamptz,
    ADD COLUMN sla_paused_at          timestamptz,
    ADD COLUMN response_due_at timestamptz GENERATED ALWAYS AS (
        CASE WHEN awaiting_reply_since IS NULL THEN NULL
             WHEN first_responded_at IS NULL THEN first_response_due_at
             ELSE next_response_due_at END) STORED,
    ADD COLUMN response_warn_at timestamptz GENERATED ALWAYS AS (
        CASE WHEN awaiting_reply_since IS NULL THEN NULL
             WHEN first_responded_at IS NULL THEN first_response_warn_at
             ELSE next_response_warn_at END) STORED;

-- The queue serves the most urgent first, then the response that falls due soonest.
DROP INDEX tickets_claimable;
CREATE INDEX tickets_claimable ON tickets (priority_rank DESC, response_due_at ASC NULLS LAST, created_at ASC)
    WHERE status IN ('new', 'open') AND claim_agent_id IS NULL;

-- `ok`, `warning` or `breached` for the clocks running on a ticket (NULL: no SLA policy). A paused
-- ticket is judged at the moment it paused, so waiting on the customer never turns it red.
CREATE FUNCTION ticket_sla_state(
    policy uuid, status text, paused_at timestamptz, response_due timestamptz, response_warn timestamptz,
    resolution_due timestamptz, resolution_warn timestamptz)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN policy IS NULL THEN NULL
        WHEN response_due <= at OR (status NOT IN ('solved', 'closed') AND resolution_due <= at) THEN 'breached'
        WHEN response_warn <= at OR (status NOT IN ('solved', 'closed') AND resolution_warn <= at) THEN 'warning'
        ELSE 'ok' END
    FROM (SELECT coalesce(paused_at, now()) AS at) AS moment
$$;

-- Keeps every clock of a ticket in step with what happens to it, whoever writes the row: set when it
-- opens, recomputed from its start when its priority or policy changes, the next-response clock
-- started when the customer waits again, everything pushed back after a pending stretch.
CREATE FUNCTION tickets_sla_clocks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    calendar uuid;
    fraction double precision;
    target sla_targets%ROWTYPE;
    paused double precision;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.sla_policy_id IS NULL THEN
        NEW.sla_policy_id := (SELECT id FROM sla_policies WHERE is_default);
    END IF;
    IF NEW.sla_policy_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT p.calendar_id, p.warning_fraction INTO calendar, fraction FROM sla_policies p WHERE p.id = NEW.sla_policy_id;
    SELECT * INTO target FROM sla_targets s
    WHERE s.policy_id = NEW.sla_policy_id AND s.priority = NEW.priority AND (s.channel = NEW.channel OR s.channel IS NULL)
    ORDER BY s.channel NULLS LAST
    LIMIT 1;

    IF TG_OP = 'INSERT' OR NEW.priority IS DISTINCT FROM OLD.priority OR NEW.sla_policy_id IS DISTINCT FROM OLD.sla_policy_id THEN
        NEW.first_response_due_at := business_time_add(calendar, NEW.created_at, target.first_response_seconds);
        NEW.first_response_warn_at := business_time_add(calendar, NEW.created_at, target.first_response_seconds * fraction);
        NEW.resolution_due_at := business_time_add(calendar, NEW.created_at, target.resolution_seconds);
        NEW.resolution_warn_at := business_time_add(calendar, NEW.created_at, target.resolution_seconds * fraction);
        IF NEW.awaiting_reply_since IS NOT NULL AND NEW.first_responded_at IS NOT NULL THEN
            NEW.next_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds);
            NEW.next_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds * fraction);
        END IF;
    END IF;

    IF TG_OP = 'UPDATE' THEN
        IF NEW.awaiting_reply_since IS NULL THEN
            NEW.next_response_due_at := NULL;
            NEW.next_response_warn_at := NULL;
        ELSIF OLD.awaiting_reply_since IS NULL AND NEW.first_responded_at IS NOT NULL THEN
            NEW.next_response_due_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds);
            NEW.next_response_warn_at := business_time_add(calendar, NEW.awaiting_reply_since, target.next_response_seconds * fraction);
        END IF;
    END IF;

    IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
        NEW.sla_paused_at := now();
    ELSIF TG_OP = 'UPDATE' AND NEW.status <> 'pending' AND OLD.sla_paused_at IS NOT NULL THEN
        paused := business_seconds(calendar, OLD.sla_paused_at, now());
        NEW.first_response_due_at := business_time_add(calendar, NEW.first_response_due_at, paused);
        NEW.first_response_warn_at := business_time_add(calendar, NEW.first_response_warn_at, paused);
        NEW.next_response_due_at := business_time_add(calendar, NEW.next_response_due_at, paused);
        NEW.next_response_warn_at := business_time_add(calendar, NEW.next_response_warn_at, paused);
        NEW.resolution_due_at := business_time_add(calendar, NEW.resolution_due_at, paused);
        NEW.resolution_warn_at := business_time_add(calendar, NEW.resolution_warn_at, paused);
        NEW.sla_paused_at := NULL;
    END IF;
    RETURN NEW;
END
$$;

-- Only the columns the clocks depend on wake the trigger: claims and edits of other fields never pay for it.
CREATE TRIGGER tickets_sla_clocks_on_insert BEFORE INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_sla_clocks();
CREATE TRIGGER tickets_sla_clocks_on_update BEFORE UPDATE OF priority, status, awaiting_reply_since, sla_policy_id ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_sla_clocks();

INSERT INTO event_types (name, description) VALUES
    ('sla_policy.created', 'A supervisor added an SLA policy.'),
    ('sla_policy.updated', 'A supervisor changed an SLA policy (targets, calendar, warning point or default).'),
    ('sla_policy.deleted', 'A supervisor removed an SLA policy; its tickets keep the due times they had.');
