-- Volume per UTC hour alone (migration 0035), a column per channel and kind, for a report without
-- filters: the folded row of each hour plus the changes not folded yet, one row each. An hour can
-- appear more than once: sum it. (A new channel needs its two columns here and in the table.)
CREATE OR REPLACE VIEW report_arrival_channel_hours AS
SELECT hour, email_tickets, email_messages, webform_tickets, webform_messages,
       sms_tickets, sms_messages, chat_tickets, chat_messages
FROM report_arrival_totals
UNION ALL
SELECT hour,
       CASE WHEN kind = 'ticket' AND channel = 'email' THEN change ELSE 0 END,
       CASE WHEN kind = 'message' AND channel = 'email' THEN change ELSE 0 END,
       CASE WHEN kind = 'ticket' AND channel = 'webform' THEN change ELSE 0 END,
       CASE WHEN kind = 'message' AND channel = 'webform' THEN change ELSE 0 END,
       CASE WHEN kind = 'ticket' AND channel = 'sms' THEN change ELSE 0 END,
       CASE WHEN kind = 'message' AND channel = 'sms' THEN change ELSE 0 END,
       CASE WHEN kind = 'ticket' AND channel = 'chat' THEN change ELSE 0 END,
       CASE WHEN kind = 'message' AND channel = 'chat' THEN change ELSE 0 END
FROM report_arrival_changes;
