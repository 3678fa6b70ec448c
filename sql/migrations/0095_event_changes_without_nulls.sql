-- A value a change had none of is left out of `ticket.updated`, not written as null: the contract
-- allows null nowhere, and `EventValueChange` says `from` is absent when the field had no value
-- before and `to` when it has none after. Two writers in SQL still wrote null; the service's own
-- events leave it out since this release (`EventStore.withoutNulls`).

-- A due time set where there was none (a ticket's clock started under a new policy), or cleared
-- (its policy removed). Same decision to the second as 0075's; only the missing side changes.
CREATE OR REPLACE FUNCTION sla_due_change(field text, before timestamptz, after timestamptz) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN date_trunc('second', before) IS NOT DISTINCT FROM date_trunc('second', after) THEN '{}'::jsonb
                ELSE jsonb_build_object(field, jsonb_strip_nulls(jsonb_build_object(
                    'from', to_char(before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                    'to', to_char(after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))))
           END
$$;

-- A reopened ticket of a departed agent goes back to the queue (0079): its assignee is taken off.
CREATE OR REPLACE FUNCTION tickets_reopened_without_departed_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM agents WHERE id = NEW.assignee_id AND active) THEN
        INSERT INTO events (type, ticket_id, customer_id, data)
        VALUES ('ticket.updated', NEW.id, NEW.customer_id,
                jsonb_build_object('changes', jsonb_build_object('assignee_id', jsonb_build_object('from', NEW.assignee_id)),
                                   'version', NEW.version));
        NEW.assignee_id := NULL;
    END IF;
    RETURN NEW;
END
$$;
