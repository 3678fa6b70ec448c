-- The facts reports are made of, written as things happen so that no report has to reconstruct
-- history from the event log: every stretch a ticket spent in a status, and every response that
-- ended a customer's wait.

-- One row per stretch of a ticket in one status: [entered_at, left_at), left_at NULL for the current
-- one. Kept by a trigger, so every writer of tickets.status keeps it without knowing of it. The
-- backlog at any instant is the rows covering that instant.
CREATE TABLE ticket_status_periods (
    ticket_id   uuid NOT NULL REFERENCES tickets (id),
    status      text NOT NULL,
    entered_at  timestamptz NOT NULL,
    left_at     timestamptz,
    CHECK (left_at IS NULL OR left_at >= entered_at)
);
CREATE INDEX ticket_status_periods_ticket ON ticket_status_periods (ticket_id, entered_at);
CREATE INDEX ticket_status_periods_span ON ticket_status_periods (entered_at, left_at);
CREATE UNIQUE INDEX ticket_status_periods_current ON ticket_status_periods (ticket_id) WHERE left_at IS NULL;

CREATE FUNCTION tickets_status_periods() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
            RETURN NULL;
        END IF;
        UPDATE ticket_status_periods SET left_at = greatest(now(), entered_at) WHERE ticket_id = NEW.id AND left_at IS NULL;
    END IF;
    INSERT INTO ticket_status_periods (ticket_id, status, entered_at)
    VALUES (NEW.id, NEW.status, CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE now() END);
    RETURN NULL;
END
$$;

CREATE TRIGGER tickets_status_periods_on_insert AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_status_periods();
CREATE TRIGGER tickets_status_periods_on_update AFTER UPDATE OF status ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_status_periods();

-- Tickets from before this migration: their present status since they were last updated (their
-- earlier history is not known).
INSERT INTO ticket_status_periods (ticket_id, status, entered_at)
SELECT id, status, CASE WHEN status = 'new' THEN created_at ELSE updated_at END FROM tickets;

-- One row per response that ended a customer's wait (migration 0024): the first response or a next
-- one, who answered, how long the customer waited in wall-clock and in business time (on the
-- ticket's SLA calendar, or the standard calendar without a policy). Written by the transaction that
-- sends the reply.
CREATE TABLE ticket_responses (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id         uuid NOT NULL REFERENCES tickets (id),
    agent_id          uuid REFERENCES agents (id),
    is_first          boolean NOT NULL,
    waited_since      timestamptz NOT NULL,
    responded_at      timestamptz NOT NULL,
    wall_seconds      double precision NOT NULL,
    business_seconds  double precision
);
CREATE INDEX ticket_responses_responded ON ticket_responses (responded_at);
CREATE INDEX ticket_responses_ticket ON ticket_responses (ticket_id);

-- Reports select arrivals by time.
CREATE INDEX tickets_created ON tickets (created_at);
CREATE INDEX messages_customer_arrivals ON messages (created_at) WHERE direction = 'inbound' AND classification = 'customer';
