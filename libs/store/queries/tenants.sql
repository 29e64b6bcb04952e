-- name: LockTenant :exec
-- The tenant's advisory lock (see lockTenant). The key is a hash of the
-- tenant id in a key space of its own.
SELECT pg_advisory_xact_lock(hashtextextended('entrasync.tenant:' || @tenant_id::text, 0));

-- name: LockTenantShared :exec
SELECT pg_advisory_xact_lock_shared(hashtextextended('entrasync.tenant:' || @tenant_id::text, 0));

-- name: CreateTenant :one
INSERT INTO tenants (id, name, entra_tenant_id, client_id, client_secret_sealed, seats, sync_interval, created_at,
                     updated_at, settings)
VALUES (@id, @name, @entra_tenant_id, @client_id, @client_secret_sealed, @seats, @sync_interval, @now::timestamptz, @now::timestamptz,
        @settings)
RETURNING created_at, updated_at;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = @id;

-- name: GetTenantForUpdate :one
SELECT * FROM tenants WHERE id = @id FOR UPDATE;

-- name: UpdateSettings :one
-- @change says what changed, for a held plan that can no longer be
-- approved. The next plan recomputes every membership and grant: scope,
-- group kinds and the plan's tier all change who belongs where.
UPDATE tenants
SET seats = @seats, settings = @settings, updated_at = @now::timestamptz,
    app_version = app_version + 1, app_changed_at = @now::timestamptz, app_change = @change,
    memberships_stale = true
WHERE id = @id
RETURNING *;

-- name: UpdateScheduleSetting :one
-- A change of the schedule alone changes when runs start, not what a
-- plan does: the app side's version stays, so a plan held before it can
-- still be approved.
UPDATE tenants
SET settings = @settings, updated_at = @now::timestamptz
WHERE id = @id
RETURNING *;

-- name: DisconnectTenant :one
UPDATE tenants
SET disconnected_at = COALESCE(disconnected_at, @now::timestamptz),
    client_secret_sealed = NULL,
    updated_at = CASE WHEN disconnected_at IS NULL THEN @now::timestamptz ELSE updated_at END
WHERE id = @id
RETURNING *;

-- name: ConnectTenant :one
UPDATE tenants
SET disconnected_at = NULL,
    entra_tenant_id = @entra_tenant_id, client_id = @client_id, client_secret_sealed = @client_secret_sealed,
    updated_at = @now::timestamptz
WHERE id = @id
RETURNING *;

-- name: FailQueuedRuns :exec
-- Runs no fetcher has begun end with @error.
UPDATE sync_runs
SET status = 'failed', error = @error, finished_at = @now::timestamptz
WHERE tenant_id = @tenant_id AND status = 'queued' AND fetch_attempts = 0;

-- name: SetTenantSeats :execrows
UPDATE tenants
SET seats = @seats,
    updated_at = CASE WHEN seats = @seats THEN updated_at ELSE @now::timestamptz END
WHERE id = @id;

-- name: TenantExists :one
SELECT EXISTS (SELECT 1 FROM tenants WHERE id = @id);

-- name: TenantCredentials :one
SELECT entra_tenant_id, client_id, client_secret_sealed
FROM tenants
WHERE id = @id;

-- name: ListTenantSchedules :many
-- The last scheduled slot comes from the runs themselves: the unique
-- (tenant_id, slot) index answers it cheaply. The last run that did not
-- fail is the newest by seq, found walking the (tenant_id, seq) index
-- backwards. (Outer joins, not scalar subqueries, so that sqlc knows
-- both may be NULL.) The schedule is in the settings; the scheduler reads
-- it in Go.
SELECT t.id, t.sync_interval, t.settings, t.created_at, s.slot AS last_scheduled_slot,
       l.created_at AS last_run_created_at
FROM tenants t
LEFT JOIN sync_runs s ON s.tenant_id = t.id AND s.slot = (
    SELECT max(r.slot) FROM sync_runs r WHERE r.tenant_id = t.id)
LEFT JOIN sync_runs l ON l.tenant_id = t.id AND l.seq = (
    SELECT max(r.seq) FROM sync_runs r WHERE r.tenant_id = t.id AND r.status <> 'failed')
WHERE t.disconnected_at IS NULL
ORDER BY t.id;
