-- A response fact names the reply that made it, so that a reply the customer never received (a
-- relay's 5xx, a bounce, a supervisor's cancel, a provider's failure report) is no response in the
-- reports: it had counted as a first response met while the ticket was back on the unanswered
-- list. Facts written before this migration name none and stay as they are.
ALTER TABLE ticket_responses ADD COLUMN IF NOT EXISTS reply_id uuid;
CREATE INDEX IF NOT EXISTS ticket_responses_reply ON ticket_responses (reply_id) WHERE reply_id IS NOT NULL;
