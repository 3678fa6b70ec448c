-- The queue's index held every workable ticket, claimed or not, so a claim walked past every live
-- claim ahead of the first free ticket: with 20,000 of 100,000 tickets being worked on, one claim
-- read 40,000 buffers. Now it holds only tickets nobody holds, and claims whose lease ran out are
-- found through their own small index (they are few: a claim is renewed or released long before).
DROP INDEX tickets_claimable;
CREATE INDEX tickets_claimable ON tickets (priority_rank DESC, first_response_due_at ASC NULLS LAST, created_at ASC)
    WHERE status IN ('new', 'open') AND claim_agent_id IS NULL;
CREATE INDEX tickets_claims_lapsing ON tickets (claim_expires_at)
    WHERE status IN ('new', 'open') AND claim_agent_id IS NOT NULL;
