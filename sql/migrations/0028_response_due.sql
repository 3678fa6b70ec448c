-- SLA attainment needs the due time each response was measured against; the ticket's next-response
-- due time is cleared once answered, so the response fact keeps it.
ALTER TABLE ticket_responses ADD COLUMN due_at timestamptz;

-- Activity reports read events of a type in a time range (approval returns per agent).
CREATE INDEX events_type_time ON events (type, occurred_at);
