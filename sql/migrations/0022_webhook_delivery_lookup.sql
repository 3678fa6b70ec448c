-- An event's next delivery attempt is numbered by counting that event's earlier attempts at the
-- endpoint. The log index (endpoint, created_at) made that a scan of the endpoint's whole log, which
-- grows with every delivery; this keeps it a lookup.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (endpoint_id, event_id);
