-- name: LockTenant
-- The tenant's advisory lock (see lockTenant). The key is a hash of the
-- tenant id in a key space of its own.
SELECT pg_advisory_xact_lock(hashtextextended('entrasync.tenant:' || $1::text, 0));

-- name: LockTenantShared
SELECT pg_advisory_xact_lock_shared(hashtextextended('entrasync.tenant:' || $1::text, 0));

-- name: CreateTenant
INSERT INTO tenants (id, name, entra_tenant_id, client_id, client_secret_sealed, seats, sync_interval, created_at,
                     updated_at, settings)
VALUES ($1, $2, $3, $4, $5, $6, $7::bigint * interval '1 microsecond', $8, $8, $9)
RETURNING created_at, updated_at;

-- name: GetTenant
SELECT id::text, name, entra_tenant_id, client_id, seats,
       (extract(epoch FROM sync_interval) * 1e6)::bigint,
       created_at, updated_at, settings, disconnected_at
FROM tenants
WHERE id = $1;

-- name: UpdateSettings
-- $2 seats, $3 the other settings, $4 the time, $5 what changed.
UPDATE tenants
SET seats = $2, settings = $3, updated_at = $4,
    app_version = app_version + 1, app_changed_at = $4, app_change = $5
WHERE id = $1
RETURNING id::text, name, entra_tenant_id, client_id, seats,
          (extract(epoch FROM sync_interval) * 1e6)::bigint,
          created_at, updated_at, settings, disconnected_at;

-- name: DisconnectTenant
UPDATE tenants
SET disconnected_at = COALESCE(disconnected_at, $2),
    client_secret_sealed = NULL,
    updated_at = CASE WHEN disconnected_at IS NULL THEN $2 ELSE updated_at END
WHERE id = $1
RETURNING id::text, name, entra_tenant_id, client_id, seats,
          (extract(epoch FROM sync_interval) * 1e6)::bigint,
          created_at, updated_at, settings, disconnected_at;

-- name: ConnectTenant
UPDATE tenants
SET disconnected_at = NULL,
    entra_tenant_id = $2, client_id = $3, client_secret_sealed = $4,
    updated_at = $5
WHERE id = $1
RETURNING id::text, name, entra_tenant_id, client_id, seats,
          (extract(epoch FROM sync_interval) * 1e6)::bigint,
          created_at, updated_at, settings, disconnected_at;

-- name: FailQueuedRuns
-- Runs no fetcher has begun end with $2.
UPDATE sync_runs
SET status = 'failed', error = $2, finished_at = $3
WHERE tenant_id = $1 AND status = 'queued' AND fetch_attempts = 0;

-- name: SetTenantSeats
UPDATE tenants
SET seats = $2,
    updated_at = CASE WHEN seats = $2 THEN updated_at ELSE $3 END
WHERE id = $1;

-- name: TenantExists
SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1);

-- name: TenantCredentials
SELECT entra_tenant_id, client_id, client_secret_sealed
FROM tenants
WHERE id = $1;

-- name: ListTenantSchedules
-- The last scheduled slot comes from the runs themselves: the unique
-- (tenant_id, slot) index answers max(slot) cheaply. The last run that
-- did not fail is the newest by seq, found walking the (tenant_id, seq)
-- index backwards.
SELECT t.id::text,
       (extract(epoch FROM t.sync_interval) * 1e6)::bigint,
       t.created_at,
       (SELECT max(r.slot) FROM sync_runs r WHERE r.tenant_id = t.id),
       (SELECT r.created_at FROM sync_runs r WHERE r.tenant_id = t.id AND r.status <> 'failed'
        ORDER BY r.seq DESC LIMIT 1)
FROM tenants t
WHERE t.disconnected_at IS NULL
ORDER BY t.id;
