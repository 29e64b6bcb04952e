-- name: MirrorUserCount :one
-- The tenant's users as the mirror last saw them (tombstones left out):
-- the size Graph's identity budget tier is chosen by.
SELECT count(*)::bigint AS users
FROM dir_users
WHERE tenant_id = @tenant_id AND NOT deleted;
