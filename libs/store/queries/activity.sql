-- name: InsertActivity :exec
INSERT INTO activity_log (tenant_id, at, actor, action, target, before, after, run_id)
VALUES (@tenant_id, @at, 'api', @action, @target, @before, @after, sqlc.narg(run_id));

-- name: ListAPIActivity :many
-- Entries written through the API, newest first, after a position.
SELECT id, at, actor, action, target, before, after, run_id
FROM activity_log
WHERE tenant_id = @tenant_id
  AND (sqlc.narg(target)::text IS NULL OR target = sqlc.narg(target))
  AND (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action))
  AND at >= @since::timestamptz
  AND (at, id) < (@before_at::timestamptz, @before_id::bigint)
ORDER BY at DESC, id DESC
LIMIT @lim;

-- name: ListAppliedRuns :many
-- Succeeded runs (their plans were applied), newest first, from a
-- position on (that run included).
SELECT id, seq, finished_at::timestamptz AS finished_at
FROM sync_runs
WHERE tenant_id = @tenant_id AND status = 'succeeded'
  AND finished_at >= @since::timestamptz
  AND (finished_at, seq) <= (@from_at::timestamptz, @from_seq::bigint)
ORDER BY finished_at DESC, seq DESC
LIMIT @lim;

-- name: ListRunActivity :many
-- One applied run's plan rows, last first, before a position.
SELECT seq, action, entra_id, group_id, role, display_name, before, after, reason
FROM sync_plan_items
WHERE tenant_id = @tenant_id AND run_id = @run_id
  AND (sqlc.narg(target)::text IS NULL OR entra_id = sqlc.narg(target) OR group_id = sqlc.narg(target))
  AND (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action))
  AND seq < @before_seq
ORDER BY seq DESC
LIMIT @lim;
