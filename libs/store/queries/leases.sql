-- Lease times are the database's (clock_timestamp()), not the caller's:
-- every fetcher host judges a lease by the one clock they share, so a
-- host whose clock runs ahead cannot take a lease that is still live.
-- Leases are the one exception to "no statement reads the database's
-- clock" (doc.go): they are coordination between hosts, not state that
-- two databases fed the same events must agree on.

-- name: AcquireLease :one
-- Takes the lease when nobody holds it, when it expired, or when the
-- caller already holds it (then it is extended).
INSERT INTO tenant_leases AS l (tenant_id, holder, expires_at)
VALUES (@tenant_id, @holder, clock_timestamp() + make_interval(secs => @ttl_seconds::float8))
ON CONFLICT (tenant_id) DO UPDATE
SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
RETURNING true AS acquired;

-- name: RenewLease :execrows
-- Extends a lease only while the caller still holds it and it has not
-- expired: once expired, another holder may already be working.
UPDATE tenant_leases
SET expires_at = clock_timestamp() + make_interval(secs => @ttl_seconds::float8)
WHERE tenant_id = @tenant_id AND holder = @holder AND expires_at > clock_timestamp();

-- name: ReleaseLease :exec
DELETE FROM tenant_leases
WHERE tenant_id = @tenant_id AND holder = @holder;
