-- Open runs, and when one last moved.
--
-- The scheduler looks among the runs that are not over, every pass, for
-- runs that stopped moving (ListStuckRuns): the partial index keeps that
-- from reading every run a tenant ever had. run_last_progress is when a
-- run last changed: created, started, fetched, or a page of it applied.

-- +goose Up
CREATE INDEX sync_runs_open ON sync_runs (created_at) WHERE status IN ('queued', 'running', 'applying');

-- +goose StatementBegin
CREATE FUNCTION run_last_progress(r sync_runs) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT GREATEST(r.created_at, r.started_at, r.fetched_at,
                    (SELECT max(p.applied_at) FROM sync_run_pages p
                     WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id))
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION run_last_progress(sync_runs);
DROP INDEX sync_runs_open;
