-- name: AcquireLease
-- Takes the lease when nobody holds it, when it expired, or when the
-- caller already holds it (then it is extended).
INSERT INTO tenant_leases AS l (tenant_id, holder, expires_at)
VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE
SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= $4
RETURNING true;

-- name: RenewLease
-- Extends a lease only while the caller still holds it and it has not
-- expired: once expired, another holder may already be working.
UPDATE tenant_leases
SET expires_at = $3
WHERE tenant_id = $1 AND holder = $2 AND expires_at > $4;

-- name: ReleaseLease
DELETE FROM tenant_leases
WHERE tenant_id = $1 AND holder = $2;
