-- Refused provider webhooks (a made-up signature) are kept a while for the record, then removed by
-- age (RejectedPayloadSweeper): this index finds the old ones without reading every mail ever kept.
CREATE INDEX IF NOT EXISTS inbound_payloads_rejected ON inbound_payloads (received_at) WHERE parse_status = 'rejected';
