-- Member counts computed from the mirror.

-- name: RecountEntraMembers :exec
-- Entra ID's count of users in each group's nested membership, from the
-- mirror's direct edges (cycle-safe), as Graph's transitiveMembers would
-- count them without reading them: for every enabled group when @whole
-- (the tenant's memberships were stale), else for the enabled groups the
-- last refresh did not count (app_groups.counted, migration 00024). The others move by the edges changed since
-- (MoveCounts).
-- Disabled, orphaned and local groups keep theirs.
WITH RECURSIVE targets (id) AS (
    SELECT g.entra_id
    FROM app_groups g
    WHERE g.tenant_id = @tenant_id AND g.status = 'enabled' AND g.kind <> 'local'
      AND (@whole::boolean OR NOT g.counted)
),
reach (root, group_id) AS (
    SELECT id, id FROM targets
    UNION
    SELECT r.root, e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'group'
),
-- Each (root, user) pair once, then counted: a hash of the pairs, where
-- count(DISTINCT) sorted every pair by root (to disk, for a 100k-user
-- group).
counted AS (
    SELECT p.root, count(*) AS n
    FROM (SELECT DISTINCT r.root, e.member_id
          FROM reach r
          JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'user') p
    GROUP BY p.root
)
UPDATE app_groups g
SET entra_member_count = c.n, updated_at = @at::timestamptz
FROM (SELECT t.id, COALESCE(counted.n, 0)::integer AS n FROM targets t LEFT JOIN counted ON counted.root = t.id) c
WHERE g.tenant_id = @tenant_id AND g.entra_id = c.id AND g.entra_member_count <> c.n;

-- name: EntraCountChanges :many
-- The edges changed since Entra's member counts were last refreshed
-- (migration 00024), each with its member type then and now ('' where
-- there was or is no edge).
SELECT c.group_id::text AS group_id, c.member_id::text AS member_id,
       COALESCE(c.type_before, '')::text AS type_before, COALESCE(e.member_type, '')::text AS type_now
FROM dir_edge_changes c
LEFT JOIN dir_members e ON e.tenant_id = c.tenant_id AND e.group_id = c.group_id AND e.member_id = c.member_id
WHERE c.tenant_id = @tenant_id AND NOT c.counted
ORDER BY c.group_id, c.member_id;

-- name: NestingEdges :many
-- Every group-in-group edge of the tenant: a few per group, read from
-- the nesting index.
SELECT group_id::text AS group_id, member_id::text AS member_id
FROM dir_members
WHERE tenant_id = @tenant_id AND member_type = 'group'
ORDER BY group_id, member_id;

-- name: UsersInGroups :many
-- The users directly in the groups @group_ids (a JSON array), each once.
SELECT DISTINCT e.member_id::text AS user_id
FROM dir_members e
WHERE e.tenant_id = @tenant_id AND e.member_type = 'user'
  AND e.group_id = ANY (ARRAY(SELECT g.id COLLATE "C" FROM jsonb_array_elements_text(@group_ids::jsonb) AS g(id)))
ORDER BY 1;

-- name: GroupsOfUsers :many
-- The groups the users @user_ids (a JSON array) are directly in.
SELECT e.member_id::text AS user_id, e.group_id::text AS group_id
FROM dir_members e
WHERE e.tenant_id = @tenant_id AND e.member_type = 'user'
  AND e.member_id = ANY (ARRAY(SELECT u.id COLLATE "C" FROM jsonb_array_elements_text(@user_ids::jsonb) AS u(id)))
ORDER BY 1, 2;

-- name: SyncedCountMoves :many
-- What run @run_id's plan does to each group's app member count: the
-- memberships it adds less those it removes (the plan's items are the
-- only writes to app_group_members but an admin deleting a group).
SELECT i.group_id::text AS group_id,
       sum(CASE i.action WHEN 'addMembership' THEN 1 ELSE -1 END)::integer AS n
FROM sync_plan_items i
WHERE i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action IN ('addMembership', 'removeMembership')
GROUP BY i.group_id
ORDER BY i.group_id;

-- name: MoveCounts :exec
-- Moves the counted groups' two counts (@moves: [{"id", "entra",
-- "synced"}]) in one write per group.
UPDATE app_groups g
SET entra_member_count = g.entra_member_count + m.entra,
    synced_member_count = g.synced_member_count + m.synced,
    updated_at = @at::timestamptz
FROM jsonb_to_recordset(@moves::jsonb) AS m(id text, entra integer, synced integer)
WHERE g.tenant_id = @tenant_id AND g.entra_id = m.id AND (m.entra <> 0 OR m.synced <> 0)
  AND g.counted AND g.status = 'enabled' AND g.kind <> 'local';

-- name: RecountSyncedMembers :exec
-- The app's member count of each enabled group the last refresh did not
-- count, from app_group_members (an index-only count per group).
UPDATE app_groups g
SET synced_member_count = c.n, updated_at = @at::timestamptz
FROM (SELECT t.entra_id,
             (SELECT count(*) FROM app_group_members m
              WHERE m.tenant_id = @tenant_id AND m.group_id = t.entra_id)::integer AS n
      FROM app_groups t
      WHERE t.tenant_id = @tenant_id AND t.status = 'enabled' AND t.kind <> 'local' AND NOT t.counted) c
WHERE g.tenant_id = @tenant_id AND g.entra_id = c.entra_id AND g.synced_member_count <> c.n;

-- name: RecountSyncedMembersWhole :exec
-- RecountSyncedMembers for a refresh after a plan that recomputed every
-- membership (a tenant's first, above all): the tenant's memberships
-- counted in one pass, grouped by group, then joined to the groups. The
-- count per group went through an index the planner picked from
-- statistics that did not know the tenant yet: a new tenant beside
-- another one is "a handful of rows", and the count read all of its
-- memberships through the (tenant, user) index once per group (50k
-- users and 1,250 groups: minutes instead of a second).
UPDATE app_groups g
SET synced_member_count = c.n, updated_at = @at::timestamptz
FROM (SELECT t.entra_id, COALESCE(m.n, 0)::integer AS n
      FROM app_groups t
      LEFT JOIN (SELECT a.group_id, count(*) AS n
                 FROM app_group_members a
                 WHERE a.tenant_id = @tenant_id
                 GROUP BY a.group_id) m ON m.group_id = t.entra_id
      WHERE t.tenant_id = @tenant_id AND t.status = 'enabled' AND t.kind <> 'local' AND NOT t.counted) c
WHERE g.tenant_id = @tenant_id AND g.entra_id = c.entra_id AND g.synced_member_count <> c.n;

-- name: CountsRefreshed :exec
-- The counts follow the mirror and the app: the enabled groups are
-- counted, the others not, and every edge change is counted. The changes of runs up to
-- @run_seq, the run whose plan is applied, go with
-- ClearMembershipChanges; those of newer runs stay for the next plan,
-- marked counted.
WITH flagged AS (
    UPDATE app_groups g
    SET counted = (g.status = 'enabled' AND g.kind <> 'local')
    WHERE g.tenant_id = @tenant_id AND g.counted <> (g.status = 'enabled' AND g.kind <> 'local')
)
UPDATE dir_edge_changes c
SET counted = true
WHERE c.tenant_id = @tenant_id AND NOT c.counted AND c.run_seq > @run_seq;

-- name: MembershipsStale :one
-- Whether the next plan recomputes every membership; then it recounts
-- every group too.
SELECT memberships_stale FROM tenants WHERE id = @tenant_id;
