-- Replies listed across tickets (`GET /v1/replies`): the approval queue (`state=submitted`), an
-- agent's drafts, replies that never reached their customer. Those states hold few rows at any time,
-- oldest first; every reply, or the sent ones, are read in creation order from the second index.
CREATE INDEX IF NOT EXISTS replies_at_desk_or_failed ON replies (state, created_at, id)
    WHERE state IN ('draft', 'submitted', 'approved', 'failed', 'bounced');
CREATE INDEX IF NOT EXISTS replies_created ON replies (created_at, id);
