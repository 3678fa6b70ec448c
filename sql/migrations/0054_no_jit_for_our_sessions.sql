-- No JIT compilation on the service's sessions in this database. Every statement here is short or
-- reads a rollup, but a report statement carries arms it skips at run time (the rows a rollup
-- replaces), which the planner still costs: at 1 M tickets the volume report's estimate passed
-- jit_above_cost and compiling took longer than running it (9.8 ms run; 1,243 ms with JIT forced to
-- compile all).
--
-- This used to be the startup parameter jit=off, which PgBouncer refuses ("unsupported startup
-- parameter: jit"). A role may set its own defaults without any privilege; scoped to this database,
-- the role's other databases keep theirs. It applies to sessions opened from now on; report
-- statements also turn JIT off in their own transaction (ReportStore), so a pool opened before this
-- ran, or a database restored without role settings, reports as fast.
DO $$
BEGIN
    EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I SET jit = off', current_database());
END
$$;
