-- name: LockTenant
-- The tenant's advisory lock (see lockTenant). The key is a hash of the
-- tenant id in a key space of its own.
SELECT pg_advisory_xact_lock(hashtextextended('entrasync.tenant:' || $1::text, 0));

-- name: LockTenantShared
SELECT pg_advisory_xact_lock_shared(hashtextextended('entrasync.tenant:' || $1::text, 0));

-- name: CreateTenant
INSERT INTO tenants (id, name, entra_tenant_id, client_id, client_secret_sealed, seats, sync_interval, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::bigint * interval '1 microsecond', $8, $8)
RETURNING created_at, updated_at;

-- name: GetTenant
SELECT id::text, name, entra_tenant_id, client_id, seats,
       (extract(epoch FROM sync_interval) * 1e6)::bigint,
       created_at, updated_at
FROM tenants
WHERE id = $1;

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
ORDER BY t.id;
