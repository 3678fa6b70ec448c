-- An SLA clock's crossing of its warning point or its due time, announced once on the event feed
-- (ticket.sla_warning, ticket.sla_breached) by SLAAlerts, the only writer. The key is the clock and
-- the moment it crossed: a clock whose due time moves (a pause ended, the customer waits again) is
-- announced again when it crosses the new one, and two workers announcing at once write one row.
CREATE TABLE IF NOT EXISTS sla_alerts (
    ticket_id    uuid NOT NULL REFERENCES tickets (id),
    clock        text NOT NULL CHECK (clock IN ('first_response', 'next_response', 'resolution')),
    kind         text NOT NULL CHECK (kind IN ('warning', 'breach')),
    at           timestamptz NOT NULL,
    announced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, clock, kind, at)
);

-- Crossings older than a day are never announced, so rows older than that are kept no longer.
CREATE INDEX IF NOT EXISTS sla_alerts_at ON sla_alerts (at);

INSERT INTO event_types (name, description) VALUES
    ('ticket.sla_warning', 'A ticket''s SLA clock passed its warning point: its response or resolution falls due soon.'),
    ('ticket.sla_breached', 'A ticket''s SLA clock passed its due time without the response or resolution it measures.')
ON CONFLICT (name) DO NOTHING;
