-- The volume report counted every ticket and customer message of its range on each request: over a
-- year of 100,000 tickets (1 M messages) that is 1.4 s, and it grows with the data. These tables keep
-- the same counts per UTC hour and per the dimensions the report filters on (channel, queue,
-- category, priority), and per hour alone with a column per channel, so a year by day reads one row
-- an hour when asked without a filter.
--
-- Writers never touch a shared counter row (concurrent ingests in the same hour would queue on its
-- lock until each commit): each change appends a row to report_arrival_changes, and
-- compact_report_arrivals() folds those into report_arrival_counts and _totals in the background.
-- The views report_arrival_hours and report_arrival_channel_hours (sql/views) read the folded counts
-- and the changes not folded yet together, so a report is exact whether or not the fold has run.
--
-- What counts is the view report_arrivals' rule, kept here by triggers: a ticket once, in the hour it
-- opened, with its present dimensions; each inbound message classified `customer`, in the hour it
-- came, on its own channel, with its ticket's present queue, category and priority. A ticket whose
-- dimensions change moves its counts. Filters the hours cannot answer (a tag, an agent) and time
-- zones whose periods do not start on UTC hours read report_arrivals itself.
CREATE TABLE report_arrival_counts (
    hour      timestamptz NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('ticket', 'message')),
    channel   channel NOT NULL,
    queue     text NOT NULL,
    category  text,
    priority  text NOT NULL,
    count     bigint NOT NULL,
    CONSTRAINT report_arrival_counts_key UNIQUE NULLS NOT DISTINCT (hour, kind, channel, queue, category, priority)
);

-- The same per hour alone, a column per channel and kind, for the report asked without a filter or
-- with a channel only (the dashboard's usual question): one row an hour however much arrives, so a
-- year is 8,760 rows to add up.
CREATE TABLE report_arrival_totals (
    hour              timestamptz PRIMARY KEY,
    email_tickets     bigint NOT NULL,
    email_messages    bigint NOT NULL,
    webform_tickets   bigint NOT NULL,
    webform_messages  bigint NOT NULL,
    sms_tickets       bigint NOT NULL,
    sms_messages      bigint NOT NULL,
    chat_tickets      bigint NOT NULL,
    chat_messages     bigint NOT NULL
);

CREATE TABLE report_arrival_changes (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour      timestamptz NOT NULL,
    kind      text NOT NULL,
    channel   channel NOT NULL,
    queue     text NOT NULL,
    category  text,
    priority  text NOT NULL,
    change    bigint NOT NULL
);

-- A ticket's own arrival, and its customer messages per hour and channel, with `sign` +1 (counted
-- under these dimensions) or -1 (no longer).
CREATE FUNCTION report_arrivals_of_ticket(
    ticket uuid, opened timestamptz, ticket_channel text, ticket_queue text, ticket_category text, ticket_priority text, sign integer)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO report_arrival_changes (hour, kind, channel, queue, category, priority, change)
    SELECT date_trunc('hour', opened, 'UTC'), 'ticket', ticket_channel::channel, ticket_queue, ticket_category, ticket_priority, sign
    UNION ALL
    SELECT date_trunc('hour', m.created_at, 'UTC'), 'message', m.channel, ticket_queue, ticket_category, ticket_priority, sign * count(*)
    FROM messages m
    WHERE m.ticket_id = ticket AND m.direction = 'inbound' AND m.classification = 'customer'
    GROUP BY 1, 3;
$$;

CREATE FUNCTION tickets_report_arrivals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO report_arrival_changes (hour, kind, channel, queue, category, priority, change)
        VALUES (date_trunc('hour', NEW.created_at, 'UTC'), 'ticket', NEW.channel, NEW.queue, NEW.category, NEW.priority, 1);
    ELSIF (NEW.channel, NEW.queue, NEW.category, NEW.priority, NEW.created_at)
          IS DISTINCT FROM (OLD.channel, OLD.queue, OLD.category, OLD.priority, OLD.created_at) THEN
        PERFORM report_arrivals_of_ticket(OLD.id, OLD.created_at, OLD.channel, OLD.queue, OLD.category, OLD.priority, -1);
        PERFORM report_arrivals_of_ticket(NEW.id, NEW.created_at, NEW.channel, NEW.queue, NEW.category, NEW.priority, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tickets_report_arrivals_on_insert AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_report_arrivals();
CREATE TRIGGER tickets_report_arrivals_on_update AFTER UPDATE OF channel, queue, category, priority, created_at ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_report_arrivals();

CREATE FUNCTION messages_report_arrivals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.direction = 'inbound' AND OLD.classification = 'customer' THEN
        INSERT INTO report_arrival_changes (hour, kind, channel, queue, category, priority, change)
        SELECT date_trunc('hour', OLD.created_at, 'UTC'), 'message', OLD.channel, t.queue, t.category, t.priority, -1
        FROM tickets t WHERE t.id = OLD.ticket_id;
    END IF;
    IF NEW.direction = 'inbound' AND NEW.classification = 'customer' THEN
        INSERT INTO report_arrival_changes (hour, kind, channel, queue, category, priority, change)
        SELECT date_trunc('hour', NEW.created_at, 'UTC'), 'message', NEW.channel, t.queue, t.category, t.priority, 1
        FROM tickets t WHERE t.id = NEW.ticket_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_report_arrivals_on_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_report_arrivals();
CREATE TRIGGER messages_report_arrivals_on_update AFTER UPDATE OF ticket_id, direction, classification, channel, created_at ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_report_arrivals();

-- Folds up to `batch` changes into the counts, oldest first, in one transaction (so a report never
-- sees a change both folded and pending, or neither); returns how many it folded. Any number may run
-- at once: a change another fold took is skipped, not counted twice.
CREATE FUNCTION compact_report_arrivals(batch integer DEFAULT 100000) RETURNS bigint
LANGUAGE sql AS $$
    WITH taken AS (
        DELETE FROM report_arrival_changes
        WHERE id IN (SELECT id FROM report_arrival_changes ORDER BY id LIMIT batch FOR UPDATE SKIP LOCKED)
        RETURNING hour, kind, channel, queue, category, priority, change
    ), summed AS (
        SELECT hour, kind, channel, queue, category, priority, sum(change) AS change, count(*) AS changes
        FROM taken GROUP BY hour, kind, channel, queue, category, priority
    ), folded AS (
        INSERT INTO report_arrival_counts AS c (hour, kind, channel, queue, category, priority, count)
        SELECT hour, kind, channel, queue, category, priority, change FROM summed
        ON CONFLICT ON CONSTRAINT report_arrival_counts_key DO UPDATE SET count = c.count + excluded.count
    ), totalled AS (
        INSERT INTO report_arrival_totals AS c
        SELECT hour,
               coalesce(sum(change) FILTER (WHERE kind = 'ticket' AND channel = 'email'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'message' AND channel = 'email'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'ticket' AND channel = 'webform'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'message' AND channel = 'webform'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'ticket' AND channel = 'sms'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'message' AND channel = 'sms'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'ticket' AND channel = 'chat'), 0),
               coalesce(sum(change) FILTER (WHERE kind = 'message' AND channel = 'chat'), 0)
        FROM summed GROUP BY hour
        ON CONFLICT (hour) DO UPDATE SET
            email_tickets = c.email_tickets + excluded.email_tickets,
            email_messages = c.email_messages + excluded.email_messages,
            webform_tickets = c.webform_tickets + excluded.webform_tickets,
            webform_messages = c.webform_messages + excluded.webform_messages,
            sms_tickets = c.sms_tickets + excluded.sms_tickets,
            sms_messages = c.sms_messages + excluded.sms_messages,
            chat_tickets = c.chat_tickets + excluded.chat_tickets,
            chat_messages = c.chat_messages + excluded.chat_messages
    )
    SELECT coalesce(sum(changes), 0)::bigint FROM summed;
$$;

-- Counts everything again from the tickets and messages, by the rule above (after a bulk load with
-- triggers off, or to repair the counts). Locks both tables against writers while it runs.
CREATE FUNCTION rebuild_report_arrivals() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE report_arrival_counts, report_arrival_totals, report_arrival_changes IN EXCLUSIVE MODE;
    LOCK TABLE tickets, messages IN SHARE MODE;
    DELETE FROM report_arrival_changes;
    DELETE FROM report_arrival_counts;
    DELETE FROM report_arrival_totals;
    INSERT INTO report_arrival_counts (hour, kind, channel, queue, category, priority, count)
    SELECT date_trunc('hour', t.created_at, 'UTC'), 'ticket', t.channel, t.queue, t.category, t.priority, count(*)
    FROM tickets t
    GROUP BY 1, 3, 4, 5, 6
    UNION ALL
    SELECT date_trunc('hour', m.created_at, 'UTC'), 'message', m.channel, t.queue, t.category, t.priority, count(*)
    FROM messages m JOIN tickets t ON t.id = m.ticket_id
    WHERE m.direction = 'inbound' AND m.classification = 'customer'
    GROUP BY 1, 3, 4, 5, 6;
    GET DIAGNOSTICS written = ROW_COUNT;
    INSERT INTO report_arrival_totals
    SELECT hour,
           coalesce(sum(count) FILTER (WHERE kind = 'ticket' AND channel = 'email'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'message' AND channel = 'email'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'ticket' AND channel = 'webform'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'message' AND channel = 'webform'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'ticket' AND channel = 'sms'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'message' AND channel = 'sms'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'ticket' AND channel = 'chat'), 0),
           coalesce(sum(count) FILTER (WHERE kind = 'message' AND channel = 'chat'), 0)
    FROM report_arrival_counts GROUP BY hour;
    RETURN written;
END
$$;

SELECT rebuild_report_arrivals();
