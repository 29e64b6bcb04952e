-- A run is read as sqlc.embed(r), the whole sync_runs row (one Go type,
-- dbsqlc.SyncRun, for every query that reads runs), beside the pages
-- applied so far where the run may still be going: run_pages_applied
-- (migration 00003) counts them, with the store's AttemptPageSpan as
-- @attempt_page_span.

-- name: NextRunSeq :one
-- Takes the tenant's row lock until commit: runs of one tenant get their
-- sequence numbers one after the other, without gaps.
UPDATE tenants
SET last_run_seq = last_run_seq + 1
WHERE id = @tenant_id
RETURNING last_run_seq, (disconnected_at IS NOT NULL)::boolean AS disconnected;

-- name: CreateRun :one
INSERT INTO sync_runs (tenant_id, id, seq, kind, trigger, slot, created_at, read_strategy)
VALUES (@tenant_id, @id, @seq, @kind, @trigger, @slot, @created_at, @read_strategy)
RETURNING *;

-- name: GetRun :one
SELECT sqlc.embed(r), run_pages_applied(r, @attempt_page_span::bigint) AS current_pages_applied
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.id = @run_id;

-- name: GetRunBySlot :one
SELECT sqlc.embed(r), run_pages_applied(r, @attempt_page_span::bigint) AS current_pages_applied
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.slot = @slot::timestamptz;

-- name: ListRuns :many
-- Newest first; keyset on seq.
SELECT sqlc.embed(r), run_pages_applied(r, @attempt_page_span::bigint) AS current_pages_applied
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.seq < @before_seq
ORDER BY r.seq DESC
LIMIT @max_rows;

-- name: ListStaleQueuedRuns :many
-- A queued run with a fetch attempt had its job taken: the reconciler has
-- not applied RunStarted yet, but the job is not lost. A queued run has
-- no pages applied (pages_applied is 0 until the run is over).
SELECT *
FROM sync_runs
WHERE status = 'queued' AND fetch_attempts = 0 AND created_at < @older_than
ORDER BY created_at, tenant_id, seq;

-- name: BeginFetch :one
-- Counts a fetch attempt of a run that is still to be fetched.
UPDATE sync_runs
SET fetch_attempts = fetch_attempts + 1
WHERE tenant_id = @tenant_id AND id = @run_id AND status IN ('queued', 'running')
RETURNING fetch_attempts;

-- name: RunStatus :one
SELECT status FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: ListStuckRuns :many
-- Runs that should be moving but are not (run_stuck, migration 00004):
-- no progress since @since, no live tenant lease at @now. The status
-- filter lets the partial index of open runs serve.
SELECT sqlc.embed(r), run_pages_applied(r, @attempt_page_span::bigint) AS current_pages_applied
FROM sync_runs r
WHERE r.status IN ('queued', 'running', 'applying') AND run_stuck(r, @since::timestamptz, @now::timestamptz)
ORDER BY r.created_at, r.tenant_id, r.seq;

-- name: RunStuck :one
-- ListStuckRuns for one run, under the run's row lock.
SELECT true AS stuck
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.id = @run_id AND run_stuck(r, @since::timestamptz, @now::timestamptz)
FOR UPDATE OF r;

-- name: LockTenantRow :one
-- Serialises the creation of a tenant's runs (NextRunSeq takes the same
-- row lock) without taking a sequence number.
SELECT true AS found FROM tenants WHERE id = @tenant_id FOR UPDATE;

-- name: WaitingRun :one
-- The tenant's oldest queued run that no fetcher has begun.
SELECT *
FROM sync_runs
WHERE tenant_id = @tenant_id AND status = 'queued' AND fetch_attempts = 0
ORDER BY seq
LIMIT 1;

-- name: EndedRunCounts :many
-- Runs by the final status they reached, for the runs metric: a run
-- enters one of these once and stays, so each count only grows.
SELECT status, count(*)::bigint AS n
FROM sync_runs
WHERE status IN ('succeeded', 'failed', 'rejected')
GROUP BY status;

-- name: LastSuccessByTenant :many
-- When each tenant's newest succeeded run finished.
SELECT tenant_id, max(finished_at)::timestamptz AS finished_at
FROM sync_runs
WHERE status = 'succeeded' AND finished_at IS NOT NULL
GROUP BY tenant_id;
