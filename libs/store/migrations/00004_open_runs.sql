-- Open runs, and when one last moved.
--
-- The scheduler looks among the runs that are not over, every pass, for
-- runs that stopped moving (ListStuckRuns): the partial index keeps that
-- from reading every run a tenant ever had. run_last_progress is when a
-- run last changed: created, started, fetched, or a page of it applied.
-- run_stuck says whether a run is stuck, in one place for the listing
-- and for the check under lock before the run is failed: a fetcher began
-- it (queued with a fetch attempt, running or applying; queued runs no
-- fetcher began are the other sweep's), nothing happened to it since
-- `since`, and no fetcher holds its tenant's lease at `now`.

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

-- +goose StatementBegin
CREATE FUNCTION run_stuck(r sync_runs, since timestamptz, now timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT r.status IN ('queued', 'running', 'applying')
       AND NOT (r.status = 'queued' AND r.fetch_attempts = 0)
       AND run_last_progress(r) < since
       AND NOT EXISTS (SELECT 1 FROM tenant_leases l WHERE l.tenant_id = r.tenant_id AND l.expires_at > now)
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION run_stuck(sync_runs, timestamptz, timestamptz);
DROP FUNCTION run_last_progress(sync_runs);
DROP INDEX sync_runs_open;
