-- Lease expiry by the database's clock.
--
-- Leases are taken and renewed with the database's clock (leases.sql), so
-- that hosts with drifting clocks agree on who holds one. Whether a run
-- is stuck asks whether its tenant is leased: that too must read the
-- database's clock, not the scheduler's `now`, or a scheduler whose clock
-- runs ahead would give up a run a fetcher is still reading. `now` still
-- judges everything else.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION run_stuck(r sync_runs, since timestamptz, now timestamptz) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT r.status IN ('queued', 'running', 'applying')
       AND NOT (r.status = 'queued' AND r.fetch_attempts = 0)
       AND run_last_progress(r) < since
       AND NOT EXISTS (SELECT 1 FROM tenant_leases l WHERE l.tenant_id = r.tenant_id AND l.expires_at > clock_timestamp())
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION run_stuck(r sync_runs, since timestamptz, now timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT r.status IN ('queued', 'running', 'applying')
       AND NOT (r.status = 'queued' AND r.fetch_attempts = 0)
       AND run_last_progress(r) < since
       AND NOT EXISTS (SELECT 1 FROM tenant_leases l WHERE l.tenant_id = r.tenant_id AND l.expires_at > now)
$$;
-- +goose StatementEnd
