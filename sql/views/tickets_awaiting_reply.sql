-- The unanswered guard (返信漏れ): every ticket whose customer is waiting for a response from us,
-- whatever its status — a ticket marked solved or closed without an answer is still here.
-- What starts and ends the wait is written once, in migration 0024_awaiting_reply.sql: customer
-- messages start it (never auto-replies, bounces or reports); an agent's reply ends it (never our
-- automatic acknowledgement or an internal note); a reply that fails for good starts it again.
-- Served by the partial index tickets_waiting_since, oldest wait first.
CREATE OR REPLACE VIEW tickets_awaiting_reply AS
SELECT t.*,
       now() - t.awaiting_reply_since AS waiting_for
FROM tickets t
WHERE t.awaiting_reply_since IS NOT NULL;
