-- The plan step's reads and writes. Every decision is libs/plan's: these
-- statements read facts (each read runs once, as a cursor the planner
-- fetches a chunk at a time: see plan.go), keep working sets in the
-- plan_work_* tables for the run being planned, and apply a stored plan
-- in bulk, action by action.

-- name: PlanTenant :one
-- The tenant as the plan step needs it, under the row lock: nothing
-- changes its settings or app side while a plan is built.
SELECT name, seats, settings, app_version, seat_shortage, memberships_stale, memberships_run_seq,
       ((SELECT count(*) FROM app_user_roles r WHERE r.tenant_id = t.id)
         + (SELECT count(*) FROM app_user_grants g WHERE g.tenant_id = t.id AND g.kind = 'role'))::bigint AS role_grants,
       (SELECT count(*) FROM app_user_grants g WHERE g.tenant_id = t.id AND g.kind = 'sharing') AS sharing_grants
FROM tenants t
WHERE t.id = @tenant_id
FOR NO KEY UPDATE;

-- name: PlanAppUserStates :many
-- The tenant's app users counted by their state as plan.SteadySeat sees
-- it: enabled, license, license disabled by an admin (sticky). The
-- counts are kept by app_users' writes (migration 00027).
SELECT s.enabled, s.license, s.sticky, s.users
FROM app_user_states s
WHERE s.tenant_id = @tenant_id AND s.users > 0
ORDER BY 1, 2, 3;

-- name: PlanUsersListed :one
-- How many users pages the run's attempt read (@lo, @hi: its page range),
-- and how many users they held.
SELECT count(*) AS pages, COALESCE(sum(cardinality(object_ids)), 0)::bigint AS users
FROM sync_run_pages
WHERE tenant_id = @tenant_id AND run_id = @run_id AND kind = 'users' AND page >= @lo AND page < @hi;

-- name: PlanScopeUsers :exec
-- Users who are members of the groups @groups, directly or through any
-- depth of nesting. UNION stops the walk at groups it has seen: cycles end.
WITH RECURSIVE reach (group_id) AS (
    SELECT g COLLATE "C" FROM unnest(@groups::text[]) AS g
    UNION
    SELECT e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'group'
)
INSERT INTO plan_work_scope (tenant_id, run_id, user_id)
SELECT DISTINCT @tenant_id::uuid, @run_id::uuid, e.member_id
FROM reach r
JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'user';

-- name: PlanDirUsers :many
-- The users Entra ID has, in Entra id order, with whether they are in
-- the scope groups. Read as a cursor (plan.go): one chunk at a time.
SELECT d.entra_id AS id, d.display_name, d.mail, d.user_principal_name, d.given_name, d.surname, d.job_title,
       d.department, d.user_type, d.account_enabled,
       EXISTS (SELECT 1 FROM plan_work_scope s
               WHERE s.tenant_id = @tenant_id AND s.run_id = @run_id AND s.user_id = d.entra_id) AS in_scope
FROM dir_users d
WHERE d.tenant_id = @tenant_id AND NOT d.deleted
ORDER BY d.entra_id;

-- name: PlanAppUsers :many
-- The app's users, in Entra id order, with their roles. A cursor.
SELECT a.entra_id, a.email, a.display_name, a.given_name, a.surname, a.job_title, a.department, a.enabled,
       a.license, a.license_disabled_at, a.display_name_edited_at, a.email_edited_at,
       ARRAY(SELECT r.role FROM app_user_roles r
             WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role)::text[] AS roles,
       a.license_run_seq
FROM app_users a
WHERE a.tenant_id = @tenant_id
ORDER BY a.entra_id;

-- name: PlanDirUsersTouched :many
-- PlanDirUsers for the users a plan decides again (plan.go): those a run
-- newer than @since (the run whose applied plan the app follows) changed
-- in the mirror, and those an admin edited since. A cursor.
WITH touched AS (
    SELECT c.entra_id FROM dir_users c WHERE c.tenant_id = @tenant_id AND c.changed_run_seq > @since::bigint
    UNION
    SELECT m.entra_id FROM app_dirty_users m WHERE m.tenant_id = @tenant_id
)
SELECT d.entra_id AS id, d.display_name, d.mail, d.user_principal_name, d.given_name, d.surname, d.job_title,
       d.department, d.user_type, d.account_enabled,
       EXISTS (SELECT 1 FROM plan_work_scope s
               WHERE s.tenant_id = @tenant_id AND s.run_id = @run_id AND s.user_id = d.entra_id) AS in_scope
FROM touched t
JOIN dir_users d ON d.tenant_id = @tenant_id AND d.entra_id = t.entra_id
WHERE NOT d.deleted
ORDER BY d.entra_id;

-- name: PlanAppUsersTouched :many
-- PlanAppUsers for the users of PlanDirUsersTouched. A cursor.
WITH touched AS (
    SELECT c.entra_id FROM dir_users c WHERE c.tenant_id = @tenant_id AND c.changed_run_seq > @since::bigint
    UNION
    SELECT m.entra_id FROM app_dirty_users m WHERE m.tenant_id = @tenant_id
)
SELECT a.entra_id, a.email, a.display_name, a.given_name, a.surname, a.job_title, a.department, a.enabled,
       a.license, a.license_disabled_at, a.display_name_edited_at, a.email_edited_at,
       ARRAY(SELECT r.role FROM app_user_roles r
             WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role)::text[] AS roles,
       a.license_run_seq
FROM touched t
JOIN app_users a ON a.tenant_id = @tenant_id AND a.entra_id = t.entra_id
ORDER BY a.entra_id;

-- name: PlanSeatHolders :many
-- The seat holders the plan keeps, oldest grant first, after the first
-- @skip: those it decided, and those it did not with the seat role
-- @seats gives them (see planner.keepSteadyUsers). A cursor.
SELECT h.entra_id, h.display_name
FROM (SELECT w.entra_id, w.display_name, w.license_run_seq
      FROM plan_work_users w
      WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id AND w.stays AND w.seat = 1
      UNION ALL
      SELECT a.entra_id, a.display_name, a.license_run_seq
      FROM app_users a
      JOIN jsonb_to_recordset(@seats::jsonb) AS s(enabled boolean, license text, sticky boolean, seat smallint)
        ON s.enabled = a.enabled AND s.license = a.license AND s.sticky = (a.license_disabled_at IS NOT NULL)
      WHERE a.tenant_id = @tenant_id AND s.seat = 1
        AND NOT EXISTS (SELECT 1 FROM plan_work_users w
                        WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id AND w.entra_id = a.entra_id)) h
ORDER BY h.license_run_seq, h.entra_id
OFFSET @skip::bigint;

-- name: PlanSeatCandidates :many
-- The first @max_rows users who want a seat, in Entra id order: those
-- the plan decided, and those it did not with the seat role @seats gives
-- them (see planner.keepSteadyUsers) when the counts say there are any
-- (@steady): looking for none read all of a tenant's app users.
SELECT c.entra_id, c.display_name
FROM (SELECT w.entra_id, w.display_name
      FROM plan_work_users w
      WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id AND w.stays AND w.seat = 2
      UNION ALL
      SELECT a.entra_id, a.display_name
      FROM app_users a
      JOIN jsonb_to_recordset(@seats::jsonb) AS s(enabled boolean, license text, sticky boolean, seat smallint)
        ON s.enabled = a.enabled AND s.license = a.license AND s.sticky = (a.license_disabled_at IS NOT NULL)
      WHERE @steady::boolean AND a.tenant_id = @tenant_id AND s.seat = 2
        AND NOT EXISTS (SELECT 1 FROM plan_work_users w
                        WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id AND w.entra_id = a.entra_id)) c
ORDER BY c.entra_id
LIMIT @max_rows::bigint;

-- name: PlanDirGroups :many
-- The groups Entra ID has, in Entra id order, and whether an admin
-- deleted them here. A cursor.
SELECT g.entra_id AS id, g.display_name, g.group_types, g.security_enabled, g.mail_enabled, g.mail, g.description,
       g.membership_rule, g.renewed_at,
       EXISTS (SELECT 1 FROM app_group_exclusions x WHERE x.tenant_id = @tenant_id AND x.entra_id = g.entra_id) AS excluded
FROM dir_groups g
WHERE g.tenant_id = @tenant_id AND NOT g.deleted
ORDER BY g.entra_id;

-- name: PlanAppGroups :many
-- The app's groups, in Entra id order, with their status. A cursor.
SELECT g.entra_id, g.display_name, g.kind, g.dynamic, g.status, g.switched_off, g.mail, g.description,
       g.membership_rule, g.entra_updated_at
FROM app_groups g
WHERE g.tenant_id = @tenant_id
ORDER BY g.entra_id;

-- name: PlanAffectAllGroups :exec
-- A plan that recomputes everything: every group the app has or keeps.
INSERT INTO plan_work_affected (tenant_id, run_id, kind, id)
SELECT @tenant_id::uuid AS tenant_id, @run_id::uuid AS run_id, 'group' AS kind, g.entra_id AS id FROM plan_work_groups g
WHERE g.tenant_id = @tenant_id AND g.run_id = @run_id
UNION
SELECT @tenant_id::uuid, @run_id::uuid, 'group', a.entra_id FROM app_groups a WHERE a.tenant_id = @tenant_id
ON CONFLICT DO NOTHING;

-- name: PlanAffectGroups :exec
-- The groups whose memberships the plan recomputes whole: @ids (those
-- whose status the groups pass changes: plan.MembershipsChange), and the
-- groups the api marked dirty with every group above them in the
-- mirror's nesting (a group's members are its nested groups' members;
-- marks left by pages before migration 00020 are group marks too). A
-- group of @ids needs no group above it: the walks go through every
-- group of the mirror, whatever the app does with it, so no membership
-- above it changes.
WITH RECURSIVE up (id) AS (
    SELECT d.group_id FROM dir_dirty_groups d WHERE d.tenant_id = @tenant_id
    UNION
    SELECT e.group_id
    FROM up
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.member_id = up.id AND e.member_type = 'group'
)
INSERT INTO plan_work_affected (tenant_id, run_id, kind, id)
SELECT @tenant_id::uuid, @run_id::uuid, 'group', up.id FROM up
UNION
SELECT @tenant_id::uuid, @run_id::uuid, 'group', i COLLATE "C" FROM unnest(@ids::text[]) AS i
ON CONFLICT DO NOTHING;

-- name: PlanAffectEdgeUsers :exec
-- The users whose memberships the plan recomputes because an edge above
-- them changed (dir_changed_edges, migration 00020): the member of each
-- such edge and, for a member that is a group, every user below it
-- (cycle-safe). Their memberships are walked up from them
-- (PlanNewUsersMembers), as a new user's are.
WITH RECURSIVE changed (id) AS (
    SELECT DISTINCT c.member_id FROM dir_changed_edges c WHERE c.tenant_id = @tenant_id
),
-- The groups among them (those with members) and every group below:
-- mostly a handful, which the planner can then see (a walk seeded with
-- every changed member made it expect thousands of groups and sort the
-- tenant's whole edge list to join them).
down (id) AS (
    SELECT c.id FROM changed c
    WHERE EXISTS (SELECT 1 FROM dir_members e WHERE e.tenant_id = @tenant_id AND e.group_id = c.id)
    UNION
    SELECT e.member_id
    FROM down
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = down.id AND e.member_type = 'group'
)
INSERT INTO plan_work_affected (tenant_id, run_id, kind, id)
SELECT @tenant_id::uuid, @run_id::uuid, 'user', e.member_id
FROM down
-- Each group's users looked up by its key (OFFSET 0 keeps the lookup a
-- subquery): the planner, which cannot see how few groups the walk
-- finds, joined them to a sort of the tenant's whole edge list.
CROSS JOIN LATERAL (
    SELECT e.member_id FROM dir_members e
    WHERE e.tenant_id = @tenant_id AND e.group_id = down.id AND e.member_type = 'user'
    OFFSET 0
) e
UNION
-- The changed members that are users, each looked up by its key: a
-- scalar subquery, not EXISTS, which the planner made a hash of the
-- tenant's 20k users to find 100 (it expects 200 changed members
-- whatever their number).
SELECT @tenant_id::uuid, @run_id::uuid, 'user', c.id
FROM changed c
WHERE (SELECT true FROM dir_users u WHERE u.tenant_id = @tenant_id AND u.entra_id = c.id)
ON CONFLICT DO NOTHING;

-- name: PlanEntraMembers :exec
-- Entra ID's nested memberships of the users and groups the app has after
-- the plan, for the affected groups that follow Entra ID (not frozen: see
-- PlanFrozenMembers). The users the app has after the plan: those it
-- decided to keep (plan_work_users.stays), and the app's users it did not
-- decide (no row: migration 00023). This statement and the ones below
-- spell that out each time, as a LEFT JOIN of plan_work_users (a hash
-- join when the plan decided every user) and app_users looked up one by
-- one only for the users without a row: a scalar subquery, not EXISTS,
-- which the planner turned into a hash of the tenant's 100k app users to
-- look up a few hundred.
WITH RECURSIVE reach (root, group_id) AS (
    SELECT g.entra_id, g.entra_id
    FROM plan_work_groups g
    JOIN plan_work_affected a ON a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'group'
                             AND a.id = g.entra_id
    WHERE g.tenant_id = @tenant_id AND g.run_id = @run_id AND NOT g.frozen
    UNION
    SELECT r.root, e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'group'
)
INSERT INTO plan_work_members (tenant_id, run_id, group_id, user_id)
SELECT DISTINCT @tenant_id::uuid, @run_id::uuid, r.root, e.member_id
FROM reach r
JOIN dir_members e ON e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_type = 'user'
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = e.member_id
WHERE COALESCE(u.stays,
               (SELECT true FROM app_users a WHERE a.tenant_id = @tenant_id AND a.entra_id = e.member_id), false);

-- name: PlanNewUsersMembers :exec
-- Entra ID's nested memberships of the affected users (who come into the
-- app, or have an edge above them changed), in the groups that follow
-- Entra ID: up from their own groups through the nesting (cycle-safe: a
-- pair is reached once). When @all_groups (every group the app keeps is
-- affected: PlanAffectAllGroups), PlanEntraMembers has every pair
-- already, and the walk stops at affected groups: in a tenant's first
-- run every user is new, and without the stop the walk would find all
-- the pairs again. Otherwise a group above an affected group need not be
-- affected (PlanAffectGroups), and the walk goes all the way up.
WITH RECURSIVE up (user_id, group_id) AS (
    SELECT e.member_id, e.group_id
    FROM plan_work_affected a
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.member_id = a.id AND e.member_type = 'user'
    WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'user'
      AND NOT (@all_groups::boolean
               AND EXISTS (SELECT 1 FROM plan_work_affected x
                           WHERE x.tenant_id = @tenant_id AND x.run_id = @run_id AND x.kind = 'group'
                             AND x.id = e.group_id))
    UNION
    SELECT up.user_id, e.group_id
    FROM up
    JOIN dir_members e ON e.tenant_id = @tenant_id AND e.member_id = up.group_id AND e.member_type = 'group'
    WHERE NOT (@all_groups::boolean
               AND EXISTS (SELECT 1 FROM plan_work_affected x
                           WHERE x.tenant_id = @tenant_id AND x.run_id = @run_id AND x.kind = 'group'
                             AND x.id = e.group_id))
)
INSERT INTO plan_work_members (tenant_id, run_id, group_id, user_id)
SELECT DISTINCT @tenant_id::uuid, @run_id::uuid, up.group_id, up.user_id
FROM up
JOIN plan_work_groups g ON g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.entra_id = up.group_id AND NOT g.frozen
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = up.user_id
WHERE COALESCE(u.stays,
               (SELECT true FROM app_users a WHERE a.tenant_id = @tenant_id AND a.entra_id = up.user_id), false)
ON CONFLICT DO NOTHING;

-- name: PlanFrozenMembers :exec
-- A frozen group (disabled, orphaned, local) keeps the memberships the app
-- has, of the users the app keeps: they stand in for Entra ID's. Only
-- affected groups and users are looked at: the others keep theirs anyway.
INSERT INTO plan_work_members (tenant_id, run_id, group_id, user_id)
SELECT @tenant_id::uuid, @run_id::uuid, m.group_id, m.user_id
FROM plan_work_groups g
JOIN plan_work_affected a ON a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'group'
                         AND a.id = g.entra_id
JOIN app_group_members m ON m.tenant_id = @tenant_id AND m.group_id = g.entra_id
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = m.user_id
WHERE g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.frozen
  AND COALESCE(u.stays, true) -- without a row: an app user the plan did not decide
UNION
SELECT @tenant_id::uuid, @run_id::uuid, m.group_id, m.user_id
FROM plan_work_affected a
JOIN app_group_members m ON m.tenant_id = @tenant_id AND m.user_id = a.id
JOIN plan_work_groups g ON g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.entra_id = m.group_id AND g.frozen
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = m.user_id
WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'user'
  AND COALESCE(u.stays, true)
ON CONFLICT DO NOTHING;

-- name: PlanMembershipsToAdd :many
-- Entra ID's memberships the app lacks (plan_work_members has users the
-- app keeps only: the name of one the plan did not decide is the app's).
-- Both names are looked up by key: a join to plan_work_users became a
-- nested loop over the whole table when the planner guessed one row
-- here. A cursor.
SELECT w.group_id, g.display_name AS group_name, w.user_id,
       COALESCE((SELECT u.display_name FROM plan_work_users u
                 WHERE u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = w.user_id),
                (SELECT a.display_name FROM app_users a WHERE a.tenant_id = @tenant_id AND a.entra_id = w.user_id),
                '')::text AS user_name
FROM plan_work_members w
JOIN plan_work_groups g ON g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.entra_id = w.group_id
WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id
  AND NOT EXISTS (SELECT 1 FROM app_group_members m
                  WHERE m.tenant_id = @tenant_id AND m.group_id = w.group_id AND m.user_id = w.user_id);

-- name: PlanAppMemberships :many
-- The app's memberships of the affected groups and users, with what the
-- plan does to their user and group and whether Entra ID still has them
-- (the others stay as they are). A cursor.
WITH scope AS MATERIALIZED (
    SELECT m.group_id, m.user_id
    FROM plan_work_affected a
    JOIN app_group_members m ON m.tenant_id = @tenant_id AND m.group_id = a.id
    WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'group'
    UNION
    SELECT m.group_id, m.user_id
    FROM plan_work_affected a
    JOIN app_group_members m ON m.tenant_id = @tenant_id AND m.user_id = a.id
    WHERE a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.kind = 'user'
)
SELECT m.group_id, COALESCE(ag.display_name, '')::text AS group_name, m.user_id,
       COALESCE(au.display_name, '')::text AS user_name,
       EXISTS (SELECT 1 FROM plan_work_members w
               WHERE w.tenant_id = @tenant_id AND w.run_id = @run_id AND w.group_id = m.group_id
                 AND w.user_id = m.user_id) AS in_entra,
       COALESCE(u.stays, au.entra_id IS NOT NULL)::boolean AS user_stays,
       EXISTS (SELECT 1 FROM plan_work_groups g
               WHERE g.tenant_id = @tenant_id AND g.run_id = @run_id AND g.entra_id = m.group_id) AS group_stays
FROM scope m
LEFT JOIN app_groups ag ON ag.tenant_id = @tenant_id AND ag.entra_id = m.group_id
LEFT JOIN app_users au ON au.tenant_id = @tenant_id AND au.entra_id = m.user_id
LEFT JOIN plan_work_users u ON u.tenant_id = @tenant_id AND u.run_id = @run_id AND u.entra_id = m.user_id;

-- name: PlanDeleteWork :exec
DELETE FROM plan_work_scope WHERE tenant_id = @tenant_id AND run_id = @run_id;
-- name: PlanDeleteWorkUsers :exec
DELETE FROM plan_work_users WHERE tenant_id = @tenant_id AND run_id = @run_id;
-- name: PlanDeleteWorkGroups :exec
DELETE FROM plan_work_groups WHERE tenant_id = @tenant_id AND run_id = @run_id;
-- name: PlanDeleteWorkMembers :exec
DELETE FROM plan_work_members WHERE tenant_id = @tenant_id AND run_id = @run_id;
-- name: PlanDeleteWorkAffected :exec
DELETE FROM plan_work_affected WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- name: ClearMembershipChanges :exec
-- The plan of run @run_seq is applied: the app's users and memberships
-- follow the marks and changes up to it, and everything when the
-- tenant's were stale. An admin's edit of a user cannot come between a
-- plan and its application (it makes a held plan stale), so every user
-- mark is spent.
WITH cleared AS (
    DELETE FROM dir_dirty_groups WHERE tenant_id = @tenant_id AND run_seq <= @run_seq
),
removed AS (
    DELETE FROM dir_edge_changes WHERE tenant_id = @tenant_id AND run_seq <= @run_seq
),
edited AS (
    DELETE FROM app_dirty_users WHERE tenant_id = @tenant_id
)
UPDATE tenants
SET memberships_stale = false, memberships_run_seq = greatest(memberships_run_seq, @run_seq)
WHERE id = @tenant_id AND (memberships_stale OR memberships_run_seq < @run_seq);

-- name: MarkGroupDirty :exec
-- An API change to a group's bindings or status: the next plan
-- recomputes its members' memberships and grants.
INSERT INTO dir_dirty_groups (tenant_id, group_id, run_seq)
VALUES (@tenant_id, @group_id, 0)
ON CONFLICT (tenant_id, group_id) DO NOTHING;

-- name: MarkUserDirty :exec
-- An admin's edit of a user (name, email, license, roles): the next plan
-- decides that user again.
INSERT INTO app_dirty_users (tenant_id, entra_id)
VALUES (@tenant_id, @entra_id)
ON CONFLICT (tenant_id, entra_id) DO NOTHING;

-- name: DeletePlanItems :exec
-- A run planned again (its transaction retried) starts from no items.
DELETE FROM sync_plan_items WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- name: HoldRun :exec
-- @plan_app_version is the tenant's app version the plan was built on.
UPDATE sync_runs
SET status = 'awaiting_approval', held_reason = @held_reason::text, held_message = @held_message,
    plan_summary = @plan_summary, plan_counts = @plan_counts,
    plan_app_version = @plan_app_version::bigint, planned_at = @at::timestamptz, pages_applied = pages_total,
    started_at = COALESCE(started_at, @at::timestamptz)
WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: RecordPlan :exec
-- A plan applied at once: what it was, before CompleteRun.
UPDATE sync_runs
SET plan_summary = @plan_summary, plan_counts = @plan_counts, plan_app_version = @plan_app_version::bigint,
    planned_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND id = @run_id;

-- Applying a plan: one statement per action, in plan.Actions' order,
-- each reading the run's items of that action. @at is the time.

-- name: ApplyRevokeRole :exec
-- Direct roles; a revocation that names a group is of a role held through
-- groups (ApplyRevokeThroughGroups).
DELETE FROM app_user_roles r
USING sync_plan_items i
WHERE r.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'revokeRole'
  AND r.user_id = i.entra_id AND r.role = i.role AND NOT COALESCE(i.before ? 'group', false);

-- name: ApplyRemoveMembership :exec
DELETE FROM app_group_members m
USING sync_plan_items i
WHERE m.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'removeMembership'
  AND m.group_id = i.group_id AND m.user_id = i.entra_id;

-- name: ApplyRevokeLicense :exec
-- A user the plan also disables or removes is left to those items,
-- applied later (plan.Actions), which leave the seat as this one would
-- (disabled: no seat; removed: no row): one write per user instead of two.
-- The items of the three actions are grouped by user, not looked up
-- user by user: with nested loops (a plan that recomputes what changed)
-- each lookup read all of the run's items (100k users, 246 revocations:
-- 380k items read, 80 ms).
UPDATE app_users u
SET license = i.license, license_run_seq = NULL, licensed_at = NULL, updated_at = @at::timestamptz
FROM (SELECT r.entra_id, min(r.after ->> 'license') AS license
      FROM sync_plan_items r
      WHERE r.tenant_id = @tenant_id AND r.run_id = @run_id
        AND r.action IN ('revokeLicense', 'disableUser', 'removeUser')
      GROUP BY r.entra_id
      HAVING bool_and(r.action = 'revokeLicense')) i
WHERE u.tenant_id = @tenant_id AND u.entra_id = i.entra_id;

-- name: ApplyRemoveUser :exec
DELETE FROM app_users u
USING sync_plan_items i
WHERE u.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'removeUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyRemoveGroup :exec
DELETE FROM app_groups g
USING sync_plan_items i
WHERE g.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'removeGroup'
  AND g.entra_id = i.entra_id;

-- name: ApplyCreateGroup :exec
INSERT INTO app_groups (tenant_id, entra_id, display_name, kind, dynamic, mail, description, membership_rule,
                        entra_updated_at, entra_member_count, synced_member_count, created_at, updated_at)
SELECT @tenant_id, i.entra_id, i.after ->> 'displayName', i.after ->> 'kind', (i.after ->> 'dynamic')::boolean,
       COALESCE(i.after ->> 'mail', ''), COALESCE(i.after ->> 'description', ''),
       COALESCE(i.after ->> 'membershipRule', ''), (i.after ->> 'entraUpdatedAt')::timestamptz,
       0, 0, @at::timestamptz, @at::timestamptz
FROM sync_plan_items i
WHERE i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'createGroup'
ORDER BY i.entra_id;

-- name: ApplyUpdateGroup :exec
UPDATE app_groups g
SET display_name = COALESCE(i.after ->> 'displayName', g.display_name),
    kind = COALESCE(i.after ->> 'kind', g.kind),
    status = COALESCE(i.after ->> 'status', g.status),
    dynamic = COALESCE((i.after ->> 'dynamic')::boolean, g.dynamic),
    mail = COALESCE(i.after ->> 'mail', g.mail),
    description = COALESCE(i.after ->> 'description', g.description),
    membership_rule = COALESCE(i.after ->> 'membershipRule', g.membership_rule),
    entra_updated_at = CASE WHEN i.after ? 'entraUpdatedAt' THEN (i.after ->> 'entraUpdatedAt')::timestamptz
                            ELSE g.entra_updated_at END,
    updated_at = @at::timestamptz
FROM sync_plan_items i
WHERE g.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'updateGroup'
  AND g.entra_id = i.entra_id;

-- name: ApplyCreateUser :exec
-- A user the plan also gives a seat (an assignLicense item) is created
-- holding it, as ApplyAssignLicense would set it: written once, not
-- inserted and then updated (a first sync of 100k users spent 1.6 s
-- updating every row it had just inserted).
INSERT INTO app_users (tenant_id, entra_id, email, display_name, given_name, surname, job_title, department,
                       enabled, license, license_run_seq, licensed_at, created_at, updated_at)
SELECT @tenant_id, i.entra_id, i.after ->> 'email', i.after ->> 'displayName', i.after ->> 'givenName',
       i.after ->> 'surname', i.after ->> 'jobTitle', i.after ->> 'department', (i.after ->> 'enabled')::boolean,
       CASE WHEN a.entra_id IS NULL THEN i.after ->> 'license' ELSE 'assigned' END,
       CASE WHEN a.entra_id IS NULL THEN NULL ELSE @run_seq::bigint END,
       CASE WHEN a.entra_id IS NULL THEN NULL ELSE @at::timestamptz END,
       @at::timestamptz, @at::timestamptz
FROM sync_plan_items i
LEFT JOIN sync_plan_items a ON a.tenant_id = @tenant_id AND a.run_id = @run_id AND a.action = 'assignLicense'
                           AND a.entra_id = i.entra_id
WHERE i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'createUser'
ORDER BY i.entra_id;

-- name: ApplyUpdateUser :exec
-- after.edited = false clears the edit marks (localEdits: overwrite).
UPDATE app_users u
SET email = COALESCE(i.after ->> 'email', u.email),
    display_name = COALESCE(i.after ->> 'displayName', u.display_name),
    given_name = COALESCE(i.after ->> 'givenName', u.given_name),
    surname = COALESCE(i.after ->> 'surname', u.surname),
    job_title = COALESCE(i.after ->> 'jobTitle', u.job_title),
    department = COALESCE(i.after ->> 'department', u.department),
    display_name_edited_at = CASE WHEN i.after ? 'edited' THEN NULL ELSE u.display_name_edited_at END,
    email_edited_at = CASE WHEN i.after ? 'edited' THEN NULL ELSE u.email_edited_at END,
    updated_at = @at::timestamptz
FROM sync_plan_items i
WHERE u.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'updateUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyDisableUser :exec
UPDATE app_users u
SET enabled = false, license = 'disabled', license_run_seq = NULL, licensed_at = NULL, updated_at = @at::timestamptz
FROM sync_plan_items i
WHERE u.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'disableUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyEnableUser :exec
UPDATE app_users u
SET enabled = true, license = i.after ->> 'license', updated_at = @at::timestamptz
FROM sync_plan_items i
WHERE u.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'enableUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyAssignLicense :exec
-- @run_seq is the run's seq: seats go back most recent grant first. A
-- user ApplyCreateUser created holding the seat is left as it is.
UPDATE app_users u
SET license = 'assigned', license_run_seq = @run_seq::bigint, licensed_at = @at::timestamptz, updated_at = @at::timestamptz
FROM sync_plan_items i
WHERE u.tenant_id = @tenant_id AND i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'assignLicense'
  AND u.entra_id = i.entra_id
  AND (u.license, u.license_run_seq) IS DISTINCT FROM ('assigned', @run_seq::bigint);

-- name: ApplyAddMembership :exec
INSERT INTO app_group_members (tenant_id, group_id, user_id)
SELECT @tenant_id, i.group_id, i.entra_id
FROM sync_plan_items i
WHERE i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'addMembership'
ORDER BY i.group_id, i.entra_id;

-- name: ApplyGrantRole :exec
INSERT INTO app_user_roles (tenant_id, user_id, role, granted_at)
SELECT @tenant_id, i.entra_id, i.role, @at::timestamptz
FROM sync_plan_items i
WHERE i.tenant_id = @tenant_id AND i.run_id = @run_id AND i.action = 'grantRole'
  AND NOT COALESCE(i.after ? 'group', false)
ORDER BY i.entra_id, i.role;

-- name: AppChanged :exec
-- Every change to the app side bumps its version: a plan built on an
-- older one can no longer be approved. @change says what changed.
UPDATE tenants
SET app_version = app_version + 1, app_changed_at = @at::timestamptz, app_change = @change
WHERE id = @tenant_id;

-- name: SetSeatShortage :exec
UPDATE tenants SET seat_shortage = @shortage WHERE id = @tenant_id AND seat_shortage <> @shortage;

-- name: NotifiedEmails :many
-- Who is told: the emails of the app users holding one of the roles @roles,
-- directly or through groups.
SELECT DISTINCT u.email
FROM (SELECT r.user_id FROM app_user_roles r WHERE r.tenant_id = @tenant_id AND r.role = ANY (@roles::text[])
      UNION
      SELECT g.user_id FROM app_user_grants g
      WHERE g.tenant_id = @tenant_id AND g.kind = 'role' AND g.name = ANY (@roles::text[])) h
JOIN app_users u ON u.tenant_id = @tenant_id AND u.entra_id = h.user_id
WHERE u.email <> ''
ORDER BY u.email;

-- name: InsertNotification :exec
-- The id is derived from (run, kind): writing a run's task twice writes
-- one row.
-- It is due for delivery at once.
INSERT INTO notification_tasks (tenant_id, id, kind, run_id, recipients, subject, body, created_at, next_attempt_at)
VALUES (@tenant_id, @id, @kind, @run_id, @recipients, @subject, @body, @created_at, @created_at)
ON CONFLICT (tenant_id, id) DO NOTHING;

-- name: RunPlanState :one
-- A held run's plan and whether it is still fresh: the newest later run
-- that was planned (0: none, as RunState's superseded_by), and the
-- tenant's app side now.
SELECT r.seq, r.status, r.plan_app_version, r.plan_counts, r.pages_first, r.pages_total,
       COALESCE((SELECT max(n.seq) FROM sync_runs n
                 WHERE n.tenant_id = r.tenant_id AND n.seq > r.seq
                   AND n.status IN ('succeeded', 'awaiting_approval', 'rejected')), 0)::bigint AS newer_planned,
       t.app_version, t.app_changed_at, t.app_change
FROM sync_runs r
JOIN tenants t ON t.id = r.tenant_id
WHERE r.tenant_id = @tenant_id AND r.id = @run_id
FOR UPDATE OF r;

-- name: DecideRun :exec
-- @status is succeeded or rejected; NULL @counts keeps the run's counts.
UPDATE sync_runs
SET status = @status, decided_at = @at::timestamptz, finished_at = @at::timestamptz, counts = COALESCE(sqlc.narg(counts)::jsonb, counts)
WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: ListPlanItems :many
-- A page of a run's plan, in planned order, after seq @after.
SELECT seq, action, entra_id, COALESCE(group_id, '')::text AS group_id, COALESCE(role, '')::text AS role, display_name,
       before, after, reason
FROM sync_plan_items
WHERE tenant_id = @tenant_id AND run_id = @run_id AND seq > @after
ORDER BY seq
LIMIT @max_rows;

-- name: ListNotifications :many
-- Newest first; keyset on (created_at, id).
SELECT id, kind, COALESCE(run_id::text, '')::text AS run_id, recipients, subject, body, created_at, delivered_at,
       status, attempts, last_error, failed_at, next_attempt_at
FROM notification_tasks
WHERE tenant_id = @tenant_id AND (created_at, id) < (@before_created_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;

-- name: PlanItemCounts :many
SELECT action, count(*) AS items
FROM sync_plan_items
WHERE tenant_id = @tenant_id AND run_id = @run_id
GROUP BY action;

-- The plan's writes in bulk (COPY), a chunk at a time.

-- name: InsertPlanItems :copyfrom
INSERT INTO sync_plan_items (tenant_id, run_id, seq, action, entra_id, group_id, role, display_name, before, after,
                             reason)
VALUES (@tenant_id, @run_id, @seq, @action, @entra_id, @group_id, @role, @display_name, @before, @after, @reason);

-- name: InsertPlanWorkUsers :copyfrom
INSERT INTO plan_work_users (tenant_id, run_id, entra_id, display_name, seat, license_run_seq, stays)
VALUES (@tenant_id, @run_id, @entra_id, @display_name, @seat, @license_run_seq, @stays);

-- name: InsertPlanWorkAffected :copyfrom
INSERT INTO plan_work_affected (tenant_id, run_id, kind, id)
VALUES (@tenant_id, @run_id, @kind, @id);

-- name: InsertPlanWorkGroups :copyfrom
INSERT INTO plan_work_groups (tenant_id, run_id, entra_id, display_name, frozen, grants)
VALUES (@tenant_id, @run_id, @entra_id, @display_name, @frozen, @grants);
