-- name: MirrorUserCount :one
-- The tenant's users as the mirror last saw them (tombstones left out),
-- counted up to @up_to (NULL: all): the size Graph's identity budget tier
-- is chosen by, which stops growing at 501 users.
SELECT count(*)::bigint AS users
FROM (SELECT 1 FROM dir_users
      WHERE tenant_id = @tenant_id AND NOT deleted
      LIMIT sqlc.narg(up_to)::bigint) u;
