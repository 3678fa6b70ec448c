-- The agents report counted approval returns (承認差し戻し) from `reply.returned` events, which
-- MADOGUCHI_EVENT_RETENTION_DAYS removes: a past month's returns dropped to zero once its events
-- were gone, while every other count stayed. It reads the note each return leaves on the timeline
-- now (`report_agent_actions`); this index finds those notes by time.
CREATE INDEX IF NOT EXISTS messages_approval_returns ON messages (created_at)
    WHERE direction = 'internal' AND metadata->>'kind' = 'approval_returned';
