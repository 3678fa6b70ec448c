-- A mail with no threading headers that repeats the subject of a ticket merged as a duplicate
-- ("Re: 至急：まだ届いていません" from a carrier phone) finds that ticket by subject, and through
-- it the one it went into; tickets_thread_subject holds only tickets not closed.
CREATE INDEX IF NOT EXISTS tickets_merged_thread_subject ON tickets (customer_id, thread_subject) WHERE merged_into IS NOT NULL;
