-- A provider's delivery report can arrive before the worker has written down the id the provider
-- gave the text (Twilio calls back as soon as the carrier answers, sometimes before its own API
-- answer reached us and was committed). Such a report matched no message and was dropped: a text the
-- carrier refused stayed "queued" for ever. It now waits here, and is applied when the worker records
-- the send (`SmsDeliveryReports`, the table's only writer; both sides serialize on an advisory lock
-- per provider id). A report that no send claims (a text sent from the provider's console, a part of
-- a long Vonage text after its first) is dropped after a day.
CREATE TABLE IF NOT EXISTS sms_reports_before_send (
    provider            text        NOT NULL,
    provider_message_id text        NOT NULL,
    status              text        NOT NULL,
    error_code          text,
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_message_id, status)
);
CREATE INDEX IF NOT EXISTS sms_reports_before_send_received ON sms_reports_before_send (received_at);
