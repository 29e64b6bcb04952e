-- Drift candidates (migration 00018): entries of a full run's pages that
-- differ from the mirror as it is before the page is written, noted by
-- the upserts themselves (UpsertUsers, UpsertGroups, UpsertMembers in
-- apply.sql). Noted only for tenants with saved delta links: a first full
-- read has nothing to drift from. Finalization decides what is drift
-- (store/drift.go).

-- name: RunDriftNotes :many
SELECT kind, group_id, object_id FROM sync_run_drift
WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- name: RunCaughtUp :one
SELECT caught_up FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: RunDeltaPageIDs :many
-- What the run's own delta rounds named (changed or removed), by page
-- kind, in any of its attempts: an earlier attempt's round explains the
-- notes its own listing pages made.
SELECT DISTINCT p.kind, s.id::text AS id
FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind IN ('users_delta', 'groups_delta');

-- name: DeleteRunDrift :exec
DELETE FROM sync_run_drift WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- name: DeleteFinishedRunDrift :exec
-- Notes of runs that ended without being finalized (failed, superseded).
DELETE FROM sync_run_drift d
USING sync_runs r
WHERE d.tenant_id = @tenant_id AND r.tenant_id = @tenant_id AND r.id = d.run_id
  AND r.status IN ('succeeded', 'failed', 'rejected');
