-- Roles and sharing permissions: the tenant's catalogue, their bindings to
-- groups, the plan's grants pass (reads as cursors, see plan.go) and what
-- the API shows of a user's grants. Decisions are libs/plan's.

-- name: UpsertGrantName :execrows
-- A custom role or sharing permission; 0 rows when it existed.
INSERT INTO app_grant_names (tenant_id, kind, name, created_at)
VALUES (@tenant_id, @kind, @name, @at::timestamptz)
ON CONFLICT (tenant_id, kind, name) DO NOTHING;

-- name: DeleteGrantName :execrows
DELETE FROM app_grant_names WHERE tenant_id = @tenant_id AND kind = @kind AND name = @name;

-- name: GrantNameBindings :many
-- The groups that bind a role or sharing permission, for the 409 that
-- refuses to delete it.
SELECT b.group_id, COALESCE(g.display_name, '')::text AS display_name
FROM app_group_grants b
LEFT JOIN app_groups g ON g.tenant_id = b.tenant_id AND g.entra_id = b.group_id
WHERE b.tenant_id = @tenant_id AND b.kind = @kind AND b.name = @name
ORDER BY b.group_id
LIMIT 10;

-- name: GrantNames :many
-- The custom roles and sharing permissions of a tenant among @names.
SELECT kind, name FROM app_grant_names
WHERE tenant_id = @tenant_id AND name = ANY (@names::text[])
ORDER BY kind, name;

-- name: GroupBindings :many
-- What a group grants, kind then name.
SELECT kind, name FROM app_group_grants
WHERE tenant_id = @tenant_id AND group_id = @group_id
ORDER BY kind, name COLLATE "C";

-- name: DropGroupBindings :execrows
-- Drops the group's bindings of @kind not among @names.
DELETE FROM app_group_grants
WHERE tenant_id = @tenant_id AND group_id = @group_id AND kind = @kind AND NOT (name = ANY (@names::text[]));

-- name: AddGroupBindings :execrows
INSERT INTO app_group_grants (tenant_id, group_id, kind, name, created_at)
SELECT @tenant_id, @group_id, @kind, n, @at::timestamptz FROM unnest(@names::text[]) AS n
ON CONFLICT (tenant_id, group_id, kind, name) DO NOTHING;

-- name: PlanGroupEdges :many
-- The mirror's group-in-group edges and every group's name: the grants
-- pass walks them in memory (plan.GroupGraph) for the reasons' paths. A
-- cursor.
SELECT e.group_id AS parent_id, e.member_id AS child_id
FROM dir_members e
WHERE e.tenant_id = @tenant_id AND e.member_type = 'group'
ORDER BY e.group_id, e.member_id;

-- name: PlanGroupNames :many
-- A cursor.
SELECT g.entra_id, g.display_name FROM dir_groups g
WHERE g.tenant_id = @tenant_id AND NOT g.deleted
ORDER BY g.entra_id;

-- name: TenantHasGrants :one
-- Whether any group binds a grant or any user holds one through a group:
-- without either, the grants pass has nothing to give or take.
SELECT EXISTS (SELECT 1 FROM app_group_grants b WHERE b.tenant_id = @tenant_id
               UNION ALL
               SELECT 1 FROM app_user_grants h WHERE h.tenant_id = @tenant_id) AS has_grants;

-- name: PlanAffectGrantees :exec
-- The users whose grants the plan recomputes: those who come or go, and
-- the members, before and after the plan, of the affected groups, and who
-- holds a grant through one of them.
INSERT INTO plan_work_affected (tenant_id, run_id, kind, id)
SELECT @tenant_id::uuid AS tenant_id, @run_id::uuid AS run_id, 'grantee' AS kind, a.id AS id FROM plan_work_affected a
WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'user'
UNION
SELECT @tenant_id::uuid, @run_id::uuid, 'grantee', w.user_id FROM plan_work_members w
WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id
UNION
SELECT @tenant_id::uuid, @run_id::uuid, 'grantee', m.user_id
FROM plan_work_affected a
JOIN app_group_members m ON m.tenant_id = @tenant_id AND m.group_id = a.id
WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'group'
UNION
SELECT @tenant_id::uuid, @run_id::uuid, 'grantee', h.user_id
FROM plan_work_affected a
JOIN app_user_grants h ON h.tenant_id = @tenant_id AND h.group_id = a.id
WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'group'
ON CONFLICT DO NOTHING;

-- name: PlanWantedGrants :many
-- What the bindings give the affected users (grantees) the app keeps,
-- through their nested memberships after the plan: those the memberships
-- pass recomputed (plan_work_members), and the app's in the groups it did
-- not. One row per (user, kind, name) with the bound groups that give it
-- and the groups the user is a direct member of. In (user, kind, name)
-- order. Orphaned groups grant nothing (plan_work_groups.grants). A
-- cursor.
WITH after AS (
    SELECT w.group_id, w.user_id
    FROM plan_work_members w
    WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id
    UNION ALL
    SELECT m.group_id, m.user_id
    FROM plan_work_affected x
    JOIN app_group_members m ON m.tenant_id = @tenant_id AND m.user_id = x.id
    WHERE x.tenant_id = @tenant_id AND x.run_id = @run_id AND x.kind = 'grantee'
      AND NOT EXISTS (SELECT 1 FROM plan_work_affected a
                      WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'group' AND a.id = m.group_id)
      AND NOT EXISTS (SELECT 1 FROM plan_work_affected a
                      WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'user' AND a.id = m.user_id)
),
wanted AS (
    SELECT w.user_id, b.kind, b.name, array_agg(b.group_id ORDER BY b.group_id)::text[] AS bound
    FROM after w
    JOIN plan_work_groups pg ON pg.tenant_id = @tenant_id AND pg.run_id = @run_id AND pg.entra_id = w.group_id
                            AND pg.grants
    JOIN app_group_grants b ON b.tenant_id = @tenant_id AND b.group_id = w.group_id
    GROUP BY w.user_id, b.kind, b.name
)
SELECT x.user_id, COALESCE(u.display_name, au.display_name)::text AS user_name, x.kind, x.name, x.bound,
       ARRAY(SELECT m.group_id FROM dir_members m
             WHERE m.tenant_id = @tenant_id AND m.member_id = x.user_id AND m.member_type = 'user'
             ORDER BY m.group_id)::text[] AS direct
FROM wanted x
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = x.user_id
LEFT JOIN app_users au ON au.tenant_id = @tenant_id AND au.entra_id = x.user_id
WHERE COALESCE(u.stays, au.entra_id IS NOT NULL) -- users the app keeps (see PlanEntraMembers)
ORDER BY x.user_id, x.kind COLLATE "C", x.name COLLATE "C";

-- name: PlanHeldGrants :many
-- What the affected users (grantees) hold through groups, with what the plan does to their user
-- and the group they got it through. In (user, kind, name) order. A
-- cursor.
SELECT h.user_id, COALESCE(au.display_name, '')::text AS user_name, h.kind, h.name, h.group_id,
       COALESCE(ag.display_name, '')::text AS group_name,
       COALESCE(u.stays, au.entra_id IS NOT NULL)::boolean AS user_stays,
       EXISTS (SELECT 1 FROM app_group_grants b
               WHERE b.tenant_id = @tenant_id AND b.group_id = h.group_id AND b.kind = h.kind
                 AND b.name = h.name) AS group_binds,
       EXISTS (SELECT 1 FROM plan_work_groups g
               WHERE g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.entra_id = h.group_id
                 AND g.grants) AS group_stays,
       EXISTS (SELECT 1 FROM plan_work_groups g
               WHERE g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.entra_id = h.group_id
                 AND NOT g.grants) AS group_orphaned
FROM app_user_grants h
LEFT JOIN app_users au ON au.tenant_id = @tenant_id AND au.entra_id = h.user_id
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = h.user_id
LEFT JOIN app_groups ag ON ag.tenant_id = @tenant_id AND ag.entra_id = h.group_id
WHERE h.tenant_id = @tenant_id
  AND EXISTS (SELECT 1 FROM plan_work_affected x
              WHERE x.tenant_id = @tenant_id AND x.run_id = @run_id AND x.kind = 'grantee' AND x.id = h.user_id)
ORDER BY h.user_id, h.kind COLLATE "C", h.name COLLATE "C";

-- name: ApplyGrantThroughGroups :exec
-- A plan's grants through groups (@action grantRole or grantSharing, of
-- @kind): the items whose after names the group.
INSERT INTO app_user_grants (tenant_id, user_id, kind, name, group_id, granted_at)
SELECT @tenant_id, i.entra_id, @kind::text, i.role, i.after ->> 'group', @at::timestamptz
FROM sync_plan_items i
WHERE i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = @action::text AND i.after ? 'group'
ORDER BY i.entra_id, i.role;

-- name: ApplyRevokeThroughGroups :exec
DELETE FROM app_user_grants g
USING sync_plan_items i
WHERE g.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = @action::text
  AND i.before ? 'group' AND g.user_id = i.entra_id AND g.kind = @kind::text AND g.name = i.role;

-- name: UserDirectRoles :many
SELECT role FROM app_user_roles WHERE tenant_id = @tenant_id AND user_id = @user_id ORDER BY role;

-- name: UserGroupGrants :many
-- What a user holds through groups, and every group bound to each.
SELECT h.kind, h.name,
       ARRAY(SELECT b.group_id FROM app_group_grants b
             WHERE b.tenant_id = h.tenant_id AND b.kind = h.kind AND b.name = h.name
             ORDER BY b.group_id)::text[] AS bound
FROM app_user_grants h
WHERE h.tenant_id = @tenant_id AND h.user_id = @user_id
ORDER BY h.kind, h.name;

-- name: UserGroupAncestry :many
-- The groups above a user in the mirror: every group-in-group edge met
-- walking up from the user's own groups (UNION ends cycles), and the
-- groups' names. A user's own groups come as edges from ''.
WITH RECURSIVE up (child_id, parent_id) AS (
    SELECT ''::text COLLATE "C", m.group_id
    FROM dir_members m
    WHERE m.tenant_id = @tenant_id AND m.member_id = @user_id AND m.member_type = 'user'
    UNION
    SELECT e.member_id, e.group_id
    FROM up
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.member_id = up.parent_id AND e.member_type = 'group'
)
SELECT up.child_id::text AS child_id, up.parent_id::text AS parent_id, COALESCE(g.display_name, '')::text AS parent_name
FROM up
LEFT JOIN dir_groups g ON g.tenant_id = @tenant_id AND g.entra_id = up.parent_id
ORDER BY 1, 2;
