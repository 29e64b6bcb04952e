-- The tenant's size as plan.ReadStrategy weighs it.

-- name: ReadStrategySizes :one
-- The mirror's users and groups (deleted ones left out), the pages a
-- listing of every group's direct members takes (an empty list is one
-- page; @page_size objects a page), and when the last run that read the
-- whole directory succeeded (the epoch stands for never).
SELECT (SELECT count(*) FROM dir_users u WHERE u.tenant_id = @tenant_id AND NOT u.deleted) AS users,
       (SELECT count(*) FROM dir_groups g WHERE g.tenant_id = @tenant_id AND NOT g.deleted) AS groups,
       (SELECT COALESCE(sum(GREATEST(1::bigint,
                                     ((SELECT count(*) FROM dir_members e
                                       WHERE e.tenant_id = g.tenant_id AND e.group_id = g.entra_id)
                                      + sqlc.arg(page_size)::bigint - 1) / sqlc.arg(page_size)::bigint)), 0)::bigint
        FROM dir_groups g
        WHERE g.tenant_id = @tenant_id AND NOT g.deleted) AS member_pages,
       COALESCE((SELECT max(r.finished_at) FROM sync_runs r
                 WHERE r.tenant_id = @tenant_id AND r.kind = 'full' AND r.read_strategy = 'full'
                   AND r.status = 'succeeded'),
                'epoch')::timestamptz AS last_whole_read_at;

-- name: ReadStrategyScopeUsers :many
-- For each of the groups @groups, the users in its nested membership by
-- the mirror's direct edges (UNION stops the walk at groups it has seen:
-- cycles end); 0 for a group the mirror does not have.
WITH RECURSIVE reach (root, group_id) AS (
    SELECT g COLLATE "C", g COLLATE "C" FROM unnest(@groups::text[]) AS g
    UNION
    SELECT r.root, e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'group'
)
SELECT r.root::text AS group_id, count(DISTINCT e.member_id) AS users
FROM reach r
LEFT JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'user'
GROUP BY r.root;

-- name: RunReadsScope :one
-- Whether the run's attempt (@lo ≤ page < @hi) read the scope groups'
-- transitive members instead of the whole directory: a scoped listing
-- has transitive lists and no groups listing (a whole read always lists
-- the groups; older fetchers sent transitive lists with it).
SELECT (EXISTS (SELECT 1 FROM sync_run_pages p
                WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'transitive'
                  AND p.page >= @lo AND p.page < @hi)
        AND NOT EXISTS (SELECT 1 FROM sync_run_pages p
                        WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'groups'
                          AND p.page >= @lo AND p.page < @hi))::boolean AS scoped;

-- name: RecordRunReadStrategy :exec
-- A run is what it read: one created to read transitively whose fetcher
-- read the whole directory instead (the settings no longer allowed the
-- transitive read) is recorded full, and counts as a whole read.
UPDATE sync_runs
SET read_strategy = CASE WHEN @scoped::boolean THEN 'transitive' ELSE 'full' END
WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: PlanScopeUsersRead :exec
-- The users in scope of a scoped listing: those in the transitive lists
-- the run read (@lo ≤ page < @hi) of the groups @groups (a group taken
-- out of the scope since the run read it no longer counts).
INSERT INTO plan_work_scope (tenant_id, run_id, user_id)
SELECT DISTINCT @tenant_id::uuid, @run_id::uuid, s.id
FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind = 'transitive'
  AND p.page >= @lo AND p.page < @hi AND p.group_id = ANY (@groups::text[]);
