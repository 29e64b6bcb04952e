-- name: AcquireLease :one
-- Takes the lease when nobody holds it, when it expired, or when the
-- caller already holds it (then it is extended).
INSERT INTO tenant_leases AS l (tenant_id, holder, expires_at)
VALUES (@tenant_id, @holder, @expires_at)
ON CONFLICT (tenant_id) DO UPDATE
SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= @now::timestamptz
RETURNING true AS acquired;

-- name: RenewLease :execrows
-- Extends a lease only while the caller still holds it and it has not
-- expired: once expired, another holder may already be working.
UPDATE tenant_leases
SET expires_at = @expires_at
WHERE tenant_id = @tenant_id AND holder = @holder AND expires_at > @now::timestamptz;

-- name: ReleaseLease :exec
DELETE FROM tenant_leases
WHERE tenant_id = @tenant_id AND holder = @holder;
