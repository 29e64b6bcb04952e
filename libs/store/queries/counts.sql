-- Member counts computed from the mirror.

-- name: RefreshEntraMemberCounts :exec
-- Entra ID's count of users in each group's nested membership, from the
-- mirror's direct edges (cycle-safe), as Graph's transitiveMembers would
-- count them without reading them: for every enabled group when the
-- tenant's memberships were stale, else for the groups marked dirty, the
-- groups of the edges changed since the plan the app follows
-- (dir_changed_edges), and every group above them. Run before
-- ClearMembershipChanges. Disabled, orphaned and local groups keep theirs.
WITH RECURSIVE targets (id) AS (
    SELECT g.entra_id
    FROM app_groups g
    JOIN tenants t ON t.id = g.tenant_id
    WHERE g.tenant_id = @tenant_id AND t.memberships_stale
    UNION
    SELECT d.group_id FROM dir_dirty_groups d WHERE d.tenant_id = @tenant_id
    UNION
    SELECT c.group_id FROM dir_changed_edges c WHERE c.tenant_id = @tenant_id
),
up (id) AS (
    SELECT id FROM targets
    UNION
    SELECT e.group_id
    FROM up
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.member_id = up.id AND e.member_type = 'group'
),
reach (root, group_id) AS (
    SELECT g.entra_id, g.entra_id
    FROM app_groups g
    JOIN up ON up.id = g.entra_id
    WHERE g.tenant_id = @tenant_id AND g.status = 'enabled' AND g.kind <> 'local'
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
FROM (SELECT up.id, COALESCE(counted.n, 0)::integer AS n FROM up LEFT JOIN counted ON counted.root = up.id) c
WHERE g.tenant_id = @tenant_id AND g.entra_id = c.id AND g.status = 'enabled' AND g.kind <> 'local'
  AND g.entra_member_count <> c.n;
