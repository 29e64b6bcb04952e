-- Finalization of a complete run, in one transaction, in this order:
-- tombstones and stale edges in the mirror, then the plan (plan.sql),
-- then the run's outcome. No statement reads the wall clock: times come
-- from the caller.
--
-- A run's pages are those of the fetch attempt its RunFetched names,
-- pages_first .. pages_first + pages_total - 1; the statements that read
-- sync_run_pages take that range as [@lo, @hi). Pages of other attempts
-- of the run are recorded too, but say nothing about what the run saw.

-- name: RunProgress :one
SELECT r.status, r.pages_total,
       (SELECT count(*) FROM sync_run_pages p
        WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
          AND p.page >= r.pages_first AND p.page < r.pages_first + r.pages_total) AS pages_applied
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.id = @run_id;

-- name: RunPagesTotal :one
SELECT pages_total::bigint FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: RunPageKinds :one
SELECT count(*) FILTER (WHERE kind = 'users') AS users_pages, count(*) FILTER (WHERE kind = 'groups') AS groups_pages,
       count(*) FILTER (WHERE kind = 'members') AS members_pages,
       count(*) FILTER (WHERE kind NOT IN ('users_delta', 'groups_delta')) AS listing_pages
FROM sync_run_pages
WHERE tenant_id = @tenant_id AND run_id = @run_id AND page >= @lo AND page < @hi;

-- name: RecordRunListed :exec
-- A run is what it read: a delta run whose attempt listed the whole
-- directory (Graph asked for a resync, or its links had aged) is a full
-- run from its finalization on, for its group results, for the weekly
-- full read, and for whoever looks at it.
UPDATE sync_runs SET kind = 'full'
WHERE tenant_id = @tenant_id AND id = @run_id AND kind = 'delta';

-- name: TombstoneUnseenUsers :many
-- Users the run did not see (in its pages, @lo ≤ page < @hi) are gone from
-- Entra. The tombstone carries the version (run seq, max page, 0): newer
-- than anything of this run, of whichever attempt (their pages stay below
-- the largest int32, see the store's MaxFetchAttempts), or of an older
-- run; older than anything of a later run.
WITH seen AS MATERIALIZED (
    SELECT DISTINCT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'users' AND p.page >= @lo AND p.page < @hi
)
UPDATE dir_users d
SET deleted = true, v_run_seq = @run_seq, v_page = 2147483647, v_idx = 0, changed_run_seq = @run_seq
WHERE d.tenant_id = @tenant_id
  AND NOT d.deleted
  AND (d.v_run_seq, d.v_page, d.v_idx) < (@run_seq, 2147483647, 0)
  AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = d.entra_id)
RETURNING d.entra_id;

-- name: TombstoneUnseenGroups :many
-- As TombstoneUnseenUsers.
WITH seen AS MATERIALIZED (
    SELECT DISTINCT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'groups' AND p.page >= @lo AND p.page < @hi
)
UPDATE dir_groups d
SET deleted = true, v_run_seq = @run_seq, v_page = 2147483647, v_idx = 0
WHERE d.tenant_id = @tenant_id
  AND NOT d.deleted
  AND (d.v_run_seq, d.v_page, d.v_idx) < (@run_seq, 2147483647, 0)
  AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = d.entra_id)
RETURNING d.entra_id;

-- name: DropUnlistedDevices :exec
-- Devices no member list names any more (after DropStaleEdges).
DELETE FROM dir_devices d
WHERE d.tenant_id = @tenant_id
  AND NOT EXISTS (SELECT 1 FROM dir_members m WHERE m.tenant_id = @tenant_id AND m.member_id = d.entra_id);

-- name: DropStaleEdges :many
-- An edge goes when its group is gone, or when the run saw the group's
-- complete member list (parts 0..n, the last one marked) without it.
-- Edges a later run wrote stay. The edges that go are recorded for the
-- plan and for Entra's member counts (dir_edge_changes, as
-- DeleteRemovedMembers does); the answer is how many each group lost.
--
-- Only the edges of the groups gone or listed complete are read. A run
-- that listed groups or member lists (@scan_all) looks for gone groups
-- among all that have edges, found one index probe each (a loose index
-- scan of the primary key: reading the edges themselves took all of a
-- 100k-user tenant's 208k). Any other run (a delta round) is given the
-- gone groups to look at (@gone_groups, DeltaGoneGroups'): probing
-- every group cost it time in proportion to the tenant (2,500 probes
-- at 100k users), not to what changed.
WITH RECURSIVE member_pages AS MATERIALIZED (
    SELECT p.group_id, p.part, p.last, p.object_ids
    FROM sync_run_pages p
    WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'members' AND p.page >= @lo AND p.page < @hi
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
    SELECT dg.entra_id FROM dir_groups dg WHERE dg.tenant_id = @tenant_id AND NOT dg.deleted
),
with_edges (id) AS (
    SELECT (SELECT min(e.group_id) FROM dir_members e WHERE e.tenant_id = @tenant_id)
    WHERE @scan_all::boolean
    UNION ALL
    SELECT (SELECT min(e.group_id) FROM dir_members e WHERE e.tenant_id = @tenant_id AND e.group_id > w.id)
    FROM with_edges w
    WHERE w.id IS NOT NULL
),
-- The groups gone (all their edges go) and those listed complete. Whether
-- a group is gone is decided here, once per group: asked per edge, the
-- planner scanned the list of live groups for each of a first run's
-- edges (6.7 s of a 50k-user tenant's first finalization).
targets AS (
    SELECT t.id, a.entra_id IS NULL AS gone
    FROM (SELECT w.id FROM with_edges w WHERE w.id IS NOT NULL
          UNION
          SELECT g.id FROM unnest(@gone_groups::text[]) AS g(id)
          UNION
          SELECT c.group_id FROM complete c) t
    LEFT JOIN alive a ON a.entra_id = t.id
    WHERE a.entra_id IS NULL OR t.id IN (SELECT c.group_id FROM complete c)
),
dropped AS (
    DELETE FROM dir_members d
    USING targets x
    WHERE d.tenant_id = @tenant_id AND d.group_id = x.id
      AND (d.v_run_seq, d.v_page, d.v_idx) < (@run_seq, 2147483647, 0)
      AND (x.gone OR NOT EXISTS (SELECT 1 FROM seen s WHERE s.group_id = d.group_id AND s.id = d.member_id))
    RETURNING d.group_id, d.member_id, d.member_type
),
marked AS (
    INSERT INTO dir_edge_changes AS r (tenant_id, group_id, member_id, run_seq, type_before)
    SELECT @tenant_id::uuid, group_id, member_id, @run_seq::bigint, member_type FROM dropped
    ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE
    SET run_seq = greatest(r.run_seq, EXCLUDED.run_seq),
        type_before = CASE WHEN r.counted THEN EXCLUDED.type_before ELSE r.type_before END,
        counted = false
)
SELECT group_id::text AS group_id, count(*) AS dropped FROM dropped GROUP BY group_id;

-- name: DeltaGoneGroups :many
-- The groups whose edges a delta run must drop: groups it named (its
-- groups_delta pages, @lo to @hi) or that were given edges since the
-- tenant's last applied plan (@since; by any run's pages, a failed
-- run's member lists too) that are not live groups of the mirror and
-- still have edges. Every finalization before dropped the edges of the
-- groups gone until then, a group goes in a delta round only when the
-- round names it, and only those groups can have gained edges. Apart
-- from DropStaleEdges so that its delete is planned for the handful of
-- groups this returns, not for an estimate of a third of the edges.
WITH candidates AS (
    SELECT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'groups_delta' AND p.page >= @lo AND p.page < @hi
    UNION
    SELECT e.group_id
    FROM dir_members e
    WHERE e.tenant_id = @tenant_id AND e.changed_run_seq > @since::bigint
)
SELECT c.id::text AS id
FROM candidates c
WHERE NOT EXISTS (SELECT 1 FROM dir_groups g WHERE g.tenant_id = @tenant_id AND g.entra_id = c.id AND NOT g.deleted)
  AND EXISTS (SELECT 1 FROM dir_members e WHERE e.tenant_id = @tenant_id AND e.group_id = c.id)
ORDER BY 1;

-- name: MembershipsRunSeq :one
SELECT memberships_run_seq FROM tenants WHERE id = @tenant_id;

-- name: CompleteRun :exec
UPDATE sync_runs
SET status = 'succeeded',
    counts = @counts,
    pages_applied = pages_total,
    started_at = COALESCE(started_at, @at::timestamptz),
    finished_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: SupersedeOlderRuns :exec
-- Runs older than one that just succeeded (@seq) can no longer change
-- anything: end them, so that nobody waits for them (or publishes their
-- job again). pages_applied as in MarkRunFailed.
UPDATE sync_runs r
SET status = 'failed',
    error = 'superseded by run ' || @seq::bigint || ', which finished first',
    finished_at = @at::timestamptz,
    pages_applied = (SELECT count(*) FROM sync_run_pages p
                     WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                       AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * @attempt_page_span::bigint)
                       AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))
WHERE r.tenant_id = @tenant_id AND r.seq < @seq AND r.status IN ('queued', 'running', 'applying');

-- name: DeleteFinishedRunPages :exec
-- Pages of runs that are over, and of held runs a later run (@seq)
-- replaced: their plans can no longer be approved. A held run keeps
-- its pages until then: approving it refreshes the groups' counts from
-- them.
DELETE FROM sync_run_pages p
USING sync_runs r
WHERE p.tenant_id = @tenant_id AND r.tenant_id = @tenant_id AND r.id = p.run_id
  AND (r.status IN ('succeeded', 'failed', 'rejected') OR (r.status = 'awaiting_approval' AND r.seq < @seq));

-- The planner's choice of joins for the rest of the transaction (see
-- setNestLoop).

-- name: SetNestLoopOff :exec
SET LOCAL enable_nestloop = off;

-- name: SetNestLoopDefault :exec
SET LOCAL enable_nestloop = DEFAULT;

-- name: SetJITOff :exec
-- No JIT compilation for the rest of the transaction (see finalize).
SET LOCAL jit = off;

-- name: RecordGroupResults :exec
-- Each of the tenant's groups is ok after the run, or shows the error
-- Graph gave for its member list in the run's pages (@lo, @hi). Only the
-- groups whose result changed are written; groups that are not synced
-- (disabled, orphaned, local) keep theirs. A delta run reads no member
-- lists: it says nothing of whether Graph lets us read them, and every
-- group keeps its result.
UPDATE app_groups g
SET last_ok = (u.error IS NULL), last_error = coalesce(u.error, '')
FROM (SELECT g2.entra_id, min(p.error) AS error
      FROM app_groups g2
      LEFT JOIN sync_run_pages p
             ON p.tenant_id = g2.tenant_id AND p.run_id = @run_id AND p.kind = 'unreadable'
            AND p.group_id = g2.entra_id AND p.page >= @lo AND p.page < @hi
      WHERE g2.tenant_id = @tenant_id AND g2.status = 'enabled' AND g2.kind <> 'local'
      GROUP BY g2.entra_id) u
WHERE g.tenant_id = @tenant_id AND g.entra_id = u.entra_id
  AND EXISTS (SELECT 1 FROM sync_runs r WHERE r.tenant_id = @tenant_id AND r.id = @run_id AND r.kind = 'full')
  AND (g.last_ok, g.last_error) IS DISTINCT FROM (u.error IS NULL, coalesce(u.error, ''));

-- name: CountUnreadableGroups :one
SELECT count(DISTINCT group_id)::bigint
FROM sync_run_pages
WHERE tenant_id = @tenant_id AND run_id = @run_id AND kind = 'unreadable' AND page >= @lo AND page < @hi;
