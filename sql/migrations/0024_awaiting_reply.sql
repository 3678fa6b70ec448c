-- The unanswered guard (返信漏れ): which customers are still waiting for us, and since when.
--
-- What counts, written once here and in openapi.yaml:
-- - a customer message is an inbound message classified `customer` (auto-replies, bounces and
--   delivery or feedback reports never start the wait);
-- - a response is an outbound message an agent sent (a reply, whatever its later delivery); the
--   service's own automatic acknowledgement (受付確認) and internal notes never end the wait;
-- - a reply whose delivery fails for good starts the wait again (the customer never got it).
-- The status plays no part: a ticket marked solved or closed without an answer is still waiting.
--
-- `awaiting_reply_since` is the first customer message after our last response (NULL: nobody is
-- waiting); `last_responded_at` is our last response. Both are kept by the transaction that writes
-- the message, so the guard is an index scan, not a search through messages.
ALTER TABLE tickets
    ADD COLUMN awaiting_reply_since timestamptz,
    ADD COLUMN last_responded_at timestamptz;

-- Tickets written before this migration, from their timelines.
UPDATE tickets t SET last_responded_at = r.at
FROM (SELECT ticket_id, max(created_at) AS at FROM messages
      WHERE direction = 'outbound' AND author_agent_id <> '00000000-0000-4000-8000-00000000a070'
      GROUP BY ticket_id) r
WHERE r.ticket_id = t.id;

UPDATE tickets t SET awaiting_reply_since = w.since
FROM (SELECT m.ticket_id, min(m.created_at) AS since FROM messages m JOIN tickets t ON t.id = m.ticket_id
      WHERE m.direction = 'inbound' AND m.classification = 'customer'
        AND (t.last_responded_at IS NULL OR m.created_at > t.last_responded_at)
      GROUP BY m.ticket_id) w
WHERE w.ticket_id = t.id;

-- Oldest wait first; small, since it holds only the tickets someone is waiting on.
CREATE INDEX tickets_waiting_since ON tickets (awaiting_reply_since, number) WHERE awaiting_reply_since IS NOT NULL;
