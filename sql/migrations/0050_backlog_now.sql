-- The backlog at "now" (the period still running) was counted from every open ticket: at 1,000,000
-- tickets, 300,000 of them open, 280 ms of the 300 ms a year's backlog took. The rollup answers the
-- last hour boundary instead, and only what changed since is counted (ReportQueries, backlog):
-- stretches entered or left since that boundary, and open tickets that turned 1, 3, 7 or 30 days old
-- since. Stretches left are found by this index; the others by the stretches' `span` index and the
-- tickets' `open_age` index.
CREATE INDEX ticket_status_periods_left ON ticket_status_periods (left_at)
    WHERE left_at IS NOT NULL AND status IN ('new', 'open', 'pending', 'on_hold');
