-- The plan step's reads and writes. Every decision is libs/plan's: these
-- statements read facts in chunks (keyset pagination, one chunk in memory
-- at a time), keep working sets in the plan_work_* tables for the run
-- being planned, and apply a stored plan in bulk, action by action.
-- $1 is always the tenant, $2 the run.

-- name: PlanTenant
-- The tenant as the plan step needs it, under the row lock: nothing
-- changes its settings or app side while a plan is built.
SELECT name, seats, settings, app_version, seat_shortage,
       (SELECT count(*) FROM app_users u WHERE u.tenant_id = t.id),
       (SELECT count(*) FROM app_users u WHERE u.tenant_id = t.id AND u.license = 'assigned'),
       (SELECT count(*) FROM app_user_roles r WHERE r.tenant_id = t.id)
FROM tenants t
WHERE t.id = $1
FOR NO KEY UPDATE;

-- name: PlanUsersListed
-- How many users pages the run's attempt read ($3, $4: its page range),
-- and how many users they held.
SELECT count(*), COALESCE(sum(cardinality(object_ids)), 0)
FROM sync_run_pages
WHERE tenant_id = $1 AND run_id = $2 AND kind = 'users' AND page >= $3 AND page < $4;

-- name: PlanScopeUsers
-- Users who are members of the groups $3, directly or through any depth
-- of nesting. UNION stops the walk at groups it has seen: cycles end.
INSERT INTO plan_work_scope (tenant_id, run_id, user_id)
WITH RECURSIVE reach (group_id) AS (
    SELECT g COLLATE "C" FROM unnest($3::text[]) AS g
    UNION
    SELECT e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = $1 AND e.group_id = r.group_id AND e.member_type = 'group'
)
SELECT DISTINCT $1::uuid, $2::uuid, e.member_id
FROM reach r
JOIN dir_members e ON e.tenant_id = $1 AND e.group_id = r.group_id AND e.member_type = 'user';

-- name: PlanDirUsers
-- A chunk of the users Entra ID has, after Entra id $3, with whether they
-- are in the scope groups.
SELECT d.entra_id, d.display_name, d.mail, d.user_principal_name, d.given_name, d.surname, d.job_title,
       d.department, d.user_type, d.account_enabled,
       EXISTS (SELECT 1 FROM plan_work_scope s
               WHERE s.tenant_id = $1 AND s.run_id = $2 AND s.user_id = d.entra_id)
FROM dir_users d
WHERE d.tenant_id = $1 AND NOT d.deleted AND d.entra_id > $3
ORDER BY d.entra_id
LIMIT $4;

-- name: PlanAppUsers
-- A chunk of the app's users, after Entra id $2, with their roles.
SELECT a.entra_id, a.email, a.display_name, a.given_name, a.surname, a.job_title, a.department, a.enabled,
       a.license, a.license_disabled_at, a.display_name_edited_at, a.email_edited_at,
       ARRAY(SELECT r.role FROM app_user_roles r
             WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role),
       a.license_run_seq
FROM app_users a
WHERE a.tenant_id = $1 AND a.entra_id > $2
ORDER BY a.entra_id
LIMIT $3;

-- name: PlanSeatHolders
-- A chunk of the seat holders the plan keeps, oldest grant first, after
-- ($3, $4).
SELECT w.entra_id, w.display_name, w.license_run_seq
FROM plan_work_users w
WHERE w.tenant_id = $1 AND w.run_id = $2 AND w.seat = 1 AND (w.license_run_seq, w.entra_id) > ($3, $4)
ORDER BY w.license_run_seq, w.entra_id
LIMIT $5;

-- name: PlanSeatCandidates
-- A chunk of the users who want a seat, in Entra id order, after $3.
SELECT w.entra_id, w.display_name
FROM plan_work_users w
WHERE w.tenant_id = $1 AND w.run_id = $2 AND w.seat = 2 AND w.entra_id > $3
ORDER BY w.entra_id
LIMIT $4;

-- name: PlanDirGroups
-- A chunk of the groups Entra ID has, after $2.
SELECT g.entra_id, g.display_name, g.group_types, g.security_enabled, g.mail_enabled
FROM dir_groups g
WHERE g.tenant_id = $1 AND NOT g.deleted AND g.entra_id > $2
ORDER BY g.entra_id
LIMIT $3;

-- name: PlanAppGroups
SELECT g.entra_id, g.display_name, g.kind, g.dynamic
FROM app_groups g
WHERE g.tenant_id = $1 AND g.entra_id > $2
ORDER BY g.entra_id
LIMIT $3;

-- name: PlanEntraMembers
-- Entra ID's nested memberships of the users and groups the app has after
-- the plan (plan_work_users, plan_work_groups).
INSERT INTO plan_work_members (tenant_id, run_id, group_id, user_id)
WITH RECURSIVE reach (root, group_id) AS (
    SELECT g.entra_id, g.entra_id
    FROM plan_work_groups g
    WHERE g.tenant_id = $1 AND g.run_id = $2
    UNION
    SELECT r.root, e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = $1 AND e.group_id = r.group_id AND e.member_type = 'group'
)
SELECT DISTINCT $1::uuid, $2::uuid, r.root, e.member_id
FROM reach r
JOIN dir_members e ON e.tenant_id = $1 AND e.group_id = r.group_id AND e.member_type = 'user'
JOIN plan_work_users u ON u.tenant_id = $1 AND u.run_id = $2 AND u.entra_id = e.member_id;

-- name: PlanMembershipsToAdd
-- A chunk of Entra ID's memberships the app lacks, after ($3, $4).
SELECT w.group_id, g.display_name, w.user_id, u.display_name
FROM plan_work_members w
JOIN plan_work_groups g ON g.tenant_id = $1 AND g.run_id = $2 AND g.entra_id = w.group_id
JOIN plan_work_users u ON u.tenant_id = $1 AND u.run_id = $2 AND u.entra_id = w.user_id
WHERE w.tenant_id = $1 AND w.run_id = $2 AND (w.group_id, w.user_id) > ($3, $4)
  AND NOT EXISTS (SELECT 1 FROM app_group_members m
                  WHERE m.tenant_id = $1 AND m.group_id = w.group_id AND m.user_id = w.user_id)
ORDER BY w.group_id, w.user_id
LIMIT $5;

-- name: PlanAppMemberships
-- A chunk of the app's memberships, after ($3, $4), with what the plan
-- does to their user and group and whether Entra ID still has them.
SELECT m.group_id, COALESCE(ag.display_name, ''), m.user_id, COALESCE(au.display_name, ''),
       EXISTS (SELECT 1 FROM plan_work_members w
               WHERE w.tenant_id = $1 AND w.run_id = $2 AND w.group_id = m.group_id AND w.user_id = m.user_id),
       EXISTS (SELECT 1 FROM plan_work_users u WHERE u.tenant_id = $1 AND u.run_id = $2 AND u.entra_id = m.user_id),
       EXISTS (SELECT 1 FROM plan_work_groups g WHERE g.tenant_id = $1 AND g.run_id = $2 AND g.entra_id = m.group_id)
FROM app_group_members m
LEFT JOIN app_groups ag ON ag.tenant_id = $1 AND ag.entra_id = m.group_id
LEFT JOIN app_users au ON au.tenant_id = $1 AND au.entra_id = m.user_id
WHERE m.tenant_id = $1 AND (m.group_id, m.user_id) > ($3, $4)
ORDER BY m.group_id, m.user_id
LIMIT $5;

-- name: PlanDeleteWork
DELETE FROM plan_work_scope WHERE tenant_id = $1 AND run_id = $2;
-- name: PlanDeleteWorkUsers
DELETE FROM plan_work_users WHERE tenant_id = $1 AND run_id = $2;
-- name: PlanDeleteWorkGroups
DELETE FROM plan_work_groups WHERE tenant_id = $1 AND run_id = $2;
-- name: PlanDeleteWorkMembers
DELETE FROM plan_work_members WHERE tenant_id = $1 AND run_id = $2;

-- name: DeletePlanItems
-- A run planned again (its transaction retried) starts from no items.
DELETE FROM sync_plan_items WHERE tenant_id = $1 AND run_id = $2;

-- name: HoldRun
-- $3 reason, $4 message, $5 summary, $6 counts, $7 the app version the
-- plan was built on, $8 the time.
UPDATE sync_runs
SET status = 'awaiting_approval', held_reason = $3, held_message = $4, plan_summary = $5, plan_counts = $6,
    plan_app_version = $7, planned_at = $8, pages_applied = pages_total,
    started_at = COALESCE(started_at, $8)
WHERE tenant_id = $1 AND id = $2;

-- name: RecordPlan
-- A plan applied at once: what it was, before CompleteRun.
UPDATE sync_runs
SET plan_summary = $3, plan_counts = $4, plan_app_version = $5, planned_at = $6
WHERE tenant_id = $1 AND id = $2;

-- Applying a plan: one statement per action, in plan.Actions' order,
-- each reading the run's items of that action. $3 is the time.

-- name: ApplyRevokeRole
DELETE FROM app_user_roles r
USING sync_plan_items i
WHERE r.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'revokeRole'
  AND r.user_id = i.entra_id AND r.role = i.role;

-- name: ApplyRemoveMembership
DELETE FROM app_group_members m
USING sync_plan_items i
WHERE m.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'removeMembership'
  AND m.group_id = i.group_id AND m.user_id = i.entra_id;

-- name: ApplyRevokeLicense
UPDATE app_users u
SET license = i.after ->> 'license', license_run_seq = NULL, licensed_at = NULL, updated_at = $3
FROM sync_plan_items i
WHERE u.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'revokeLicense'
  AND u.entra_id = i.entra_id;

-- name: ApplyRemoveUser
DELETE FROM app_users u
USING sync_plan_items i
WHERE u.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'removeUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyRemoveGroup
DELETE FROM app_groups g
USING sync_plan_items i
WHERE g.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'removeGroup'
  AND g.entra_id = i.entra_id;

-- name: ApplyCreateGroup
INSERT INTO app_groups (tenant_id, entra_id, display_name, kind, dynamic, entra_member_count,
                        synced_member_count, created_at, updated_at)
SELECT $1, i.entra_id, i.after ->> 'displayName', i.after ->> 'kind', (i.after ->> 'dynamic')::boolean, 0, 0, $3, $3
FROM sync_plan_items i
WHERE i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'createGroup'
ORDER BY i.entra_id;

-- name: ApplyUpdateGroup
UPDATE app_groups g
SET display_name = COALESCE(i.after ->> 'displayName', g.display_name),
    kind = COALESCE(i.after ->> 'kind', g.kind),
    dynamic = COALESCE((i.after ->> 'dynamic')::boolean, g.dynamic),
    updated_at = $3
FROM sync_plan_items i
WHERE g.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'updateGroup'
  AND g.entra_id = i.entra_id;

-- name: ApplyCreateUser
INSERT INTO app_users (tenant_id, entra_id, email, display_name, given_name, surname, job_title, department,
                       enabled, license, created_at, updated_at)
SELECT $1, i.entra_id, i.after ->> 'email', i.after ->> 'displayName', i.after ->> 'givenName',
       i.after ->> 'surname', i.after ->> 'jobTitle', i.after ->> 'department', (i.after ->> 'enabled')::boolean,
       i.after ->> 'license', $3, $3
FROM sync_plan_items i
WHERE i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'createUser'
ORDER BY i.entra_id;

-- name: ApplyUpdateUser
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
    updated_at = $3
FROM sync_plan_items i
WHERE u.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'updateUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyDisableUser
UPDATE app_users u
SET enabled = false, license = 'disabled', license_run_seq = NULL, licensed_at = NULL, updated_at = $3
FROM sync_plan_items i
WHERE u.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'disableUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyEnableUser
UPDATE app_users u
SET enabled = true, license = i.after ->> 'license', updated_at = $3
FROM sync_plan_items i
WHERE u.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'enableUser'
  AND u.entra_id = i.entra_id;

-- name: ApplyAssignLicense
-- $4 is the run's seq: seats go back most recent grant first.
UPDATE app_users u
SET license = 'assigned', license_run_seq = $4, licensed_at = $3, updated_at = $3
FROM sync_plan_items i
WHERE u.tenant_id = $1 AND i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'assignLicense'
  AND u.entra_id = i.entra_id;

-- name: ApplyAddMembership
INSERT INTO app_group_members (tenant_id, group_id, user_id)
SELECT $1, i.group_id, i.entra_id
FROM sync_plan_items i
WHERE i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'addMembership'
ORDER BY i.group_id, i.entra_id;

-- name: ApplyGrantRole
INSERT INTO app_user_roles (tenant_id, user_id, role, granted_at)
SELECT $1, i.entra_id, i.role, $3
FROM sync_plan_items i
WHERE i.tenant_id = $1 AND i.run_id = $2 AND i.action = 'grantRole'
ORDER BY i.entra_id, i.role;

-- name: RefreshGroupCounts
-- Member counts are observations, not plan items: Graph's transitive user
-- count from this run's pages ($3, $4: its page range; kept from before
-- for a group the run has none for) and the app's members.
WITH transitive AS (
    SELECT p.group_id, count(DISTINCT s.id) AS n
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = $1 AND p.run_id = $2 AND p.kind = 'transitive' AND p.page >= $3 AND p.page < $4
    GROUP BY p.group_id
),
synced AS (
    SELECT group_id, count(*) AS n
    FROM app_group_members
    WHERE tenant_id = $1
    GROUP BY group_id
)
UPDATE app_groups g
SET entra_member_count = c.entra, synced_member_count = c.synced, updated_at = $5
FROM (SELECT g2.entra_id,
             COALESCE(t.n, g2.entra_member_count)::integer AS entra,
             COALESCE(sy.n, 0)::integer AS synced
      FROM app_groups g2
      LEFT JOIN transitive t ON t.group_id = g2.entra_id
      LEFT JOIN synced sy ON sy.group_id = g2.entra_id
      WHERE g2.tenant_id = $1) c
WHERE g.tenant_id = $1 AND g.entra_id = c.entra_id
  AND (g.entra_member_count, g.synced_member_count) IS DISTINCT FROM (c.entra, c.synced);

-- name: AppChanged
-- Every change to the app side bumps its version: a plan built on an
-- older one can no longer be approved. $2 the time, $3 what changed.
UPDATE tenants
SET app_version = app_version + 1, app_changed_at = $2, app_change = $3
WHERE id = $1;

-- name: SetSeatShortage
UPDATE tenants SET seat_shortage = $2 WHERE id = $1 AND seat_shortage <> $2;

-- name: NotifiedEmails
-- Who is told: the emails of the app users holding one of the roles $2.
SELECT DISTINCT u.email
FROM app_user_roles r
JOIN app_users u ON u.tenant_id = r.tenant_id AND u.entra_id = r.user_id
WHERE r.tenant_id = $1 AND r.role = ANY ($2::text[]) AND u.email <> ''
ORDER BY u.email;

-- name: InsertNotification
-- The id is derived from (run, kind): writing a run's task twice writes
-- one row.
INSERT INTO notification_tasks (tenant_id, id, kind, run_id, recipients, subject, body, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, id) DO NOTHING;

-- name: RunPlanState
-- A held run's plan and whether it is still fresh: the newest later run
-- that was planned, and the tenant's app side now.
SELECT r.seq, r.status, r.plan_app_version, r.plan_counts, r.pages_first, r.pages_total,
       (SELECT max(n.seq) FROM sync_runs n
        WHERE n.tenant_id = r.tenant_id AND n.seq > r.seq
          AND n.status IN ('succeeded', 'awaiting_approval', 'rejected')),
       t.app_version, t.app_changed_at, t.app_change
FROM sync_runs r
JOIN tenants t ON t.id = r.tenant_id
WHERE r.tenant_id = $1 AND r.id = $2
FOR UPDATE OF r;

-- name: DecideRun
-- $3 the new status (succeeded or rejected), $4 the time, $5 counts.
UPDATE sync_runs
SET status = $3, decided_at = $4, finished_at = $4, counts = COALESCE($5, counts)
WHERE tenant_id = $1 AND id = $2;

-- name: ListPlanItems
-- A page of a run's plan, in planned order, after seq $3.
SELECT seq, action, entra_id, COALESCE(group_id, ''), COALESCE(role, ''), display_name, before, after, reason
FROM sync_plan_items
WHERE tenant_id = $1 AND run_id = $2 AND seq > $3
ORDER BY seq
LIMIT $4;

-- name: ListNotifications
-- Newest first; keyset on (created_at, id).
SELECT id::text, kind, COALESCE(run_id::text, ''), recipients, subject, body, created_at, delivered_at
FROM notification_tasks
WHERE tenant_id = $1 AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC
LIMIT $4;

-- name: PlanItemCounts
SELECT action, count(*)
FROM sync_plan_items
WHERE tenant_id = $1 AND run_id = $2
GROUP BY action;
