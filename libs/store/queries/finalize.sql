-- Finalization of a complete run, in one transaction, in this order:
-- tombstones and stale edges in the mirror, then the plan (plan.sql),
-- then the run's outcome. $1 is always the
-- tenant. No statement reads the wall clock: times come from the caller.
--
-- A run's pages are those of the fetch attempt its RunFetched names,
-- pages_first .. pages_first + pages_total - 1; the statements that read
-- sync_run_pages take that range as [lo, hi). Pages of other attempts of
-- the run are recorded too, but say nothing about what the run saw.

-- name: RunProgress
SELECT r.status, r.pages_total,
       (SELECT count(*) FROM sync_run_pages p
        WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
          AND p.page >= r.pages_first AND p.page < r.pages_first + r.pages_total)
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.id = $2;

-- name: RunPagesTotal
SELECT pages_total::bigint FROM sync_runs WHERE tenant_id = $1 AND id = $2;

-- name: RunPageKinds
-- $3, $4: the run's page range [lo, hi).
SELECT count(*) FILTER (WHERE kind = 'users'), count(*) FILTER (WHERE kind = 'groups')
FROM sync_run_pages
WHERE tenant_id = $1 AND run_id = $2 AND page >= $3 AND page < $4;

-- name: TombstoneUnseenUsers
-- Users the run did not see (in its pages, $4 ≤ page < $5) are gone from
-- Entra. The tombstone carries the version (run seq, max page, 0): newer
-- than anything of this run, of whichever attempt (their pages stay below
-- the largest int32, see the proto's MaxFetchAttempts), or of an older
-- run; older than anything of a later run.
WITH seen AS MATERIALIZED (
    SELECT DISTINCT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = $1 AND p.run_id = $2 AND p.kind = 'users' AND p.page >= $4 AND p.page < $5
)
UPDATE dir_users d
SET deleted = true, v_run_seq = $3, v_page = 2147483647, v_idx = 0
WHERE d.tenant_id = $1
  AND NOT d.deleted
  AND (d.v_run_seq, d.v_page, d.v_idx) < ($3, 2147483647, 0)
  AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = d.entra_id);

-- name: TombstoneUnseenGroups
-- As TombstoneUnseenUsers.
WITH seen AS MATERIALIZED (
    SELECT DISTINCT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = $1 AND p.run_id = $2 AND p.kind = 'groups' AND p.page >= $4 AND p.page < $5
)
UPDATE dir_groups d
SET deleted = true, v_run_seq = $3, v_page = 2147483647, v_idx = 0
WHERE d.tenant_id = $1
  AND NOT d.deleted
  AND (d.v_run_seq, d.v_page, d.v_idx) < ($3, 2147483647, 0)
  AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = d.entra_id);

-- name: DropStaleEdges
-- An edge goes when its group is gone, or when the run saw the group's
-- complete member list (parts 0..n, the last one marked) without it.
-- Edges a later run wrote stay. $4, $5: the run's page range [lo, hi).
WITH member_pages AS MATERIALIZED (
    SELECT group_id, part, last, object_ids
    FROM sync_run_pages
    WHERE tenant_id = $1 AND run_id = $2 AND kind = 'members' AND page >= $4 AND page < $5
),
complete AS (
    SELECT group_id
    FROM member_pages
    GROUP BY group_id
    HAVING bool_or(last)
       AND count(DISTINCT part) = max(part) + 1
       AND max(part) FILTER (WHERE last) = max(part)
),
seen AS (
    SELECT DISTINCT mp.group_id, s.id
    FROM member_pages mp, unnest(mp.object_ids) AS s(id)
    WHERE mp.group_id IN (SELECT group_id FROM complete)
),
alive AS (
    SELECT entra_id FROM dir_groups WHERE tenant_id = $1 AND NOT deleted
)
DELETE FROM dir_members d
WHERE d.tenant_id = $1
  AND (d.v_run_seq, d.v_page, d.v_idx) < ($3, 2147483647, 0)
  AND (NOT EXISTS (SELECT 1 FROM alive a WHERE a.entra_id = d.group_id)
       OR (EXISTS (SELECT 1 FROM complete c WHERE c.group_id = d.group_id)
           AND NOT EXISTS (SELECT 1 FROM seen s WHERE s.group_id = d.group_id AND s.id = d.member_id)));

-- name: CompleteRun
UPDATE sync_runs
SET status = 'succeeded',
    counts = $3,
    pages_applied = pages_total,
    started_at = COALESCE(started_at, $4),
    finished_at = $4
WHERE tenant_id = $1 AND id = $2;

-- name: SupersedeOlderRuns
-- Runs older than one that just succeeded can no longer change anything:
-- end them, so that nobody waits for them (or publishes their job again).
-- pages_applied as in MarkRunFailed ($4 is the proto's AttemptPageSpan).
UPDATE sync_runs r
SET status = 'failed',
    error = 'superseded by run ' || $2::bigint || ', which finished first',
    finished_at = $3,
    pages_applied = (SELECT count(*) FROM sync_run_pages p
                     WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                       AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * $4::bigint)
                       AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))
WHERE r.tenant_id = $1 AND r.seq < $2 AND r.status IN ('queued', 'running', 'applying');

-- name: DeleteFinishedRunPages
-- Pages of runs that are over, and of held runs a later run ($2 is its
-- seq) replaced: their plans can no longer be approved. A held run keeps
-- its pages until then: approving it refreshes the groups' counts from
-- them.
DELETE FROM sync_run_pages p
USING sync_runs r
WHERE p.tenant_id = $1 AND r.tenant_id = $1 AND r.id = p.run_id
  AND (r.status IN ('succeeded', 'failed', 'rejected') OR (r.status = 'awaiting_approval' AND r.seq < $2));
