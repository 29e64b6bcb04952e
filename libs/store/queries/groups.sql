-- A group's status and switch, as admins change them through the API,
-- and local groups. Decisions are libs/plan's (plan.CanEnable); syncs
-- move statuses through their plans (plan.sql).

-- name: AppGroupState :one
-- The group as an admin edits it. Read under the tenant's lock.
SELECT entra_id, display_name, kind, status, switched_off FROM app_groups
WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: SetGroupState :exec
UPDATE app_groups
SET status = @status, switched_off = @switched_off, updated_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: InsertLocalGroup :exec
INSERT INTO app_groups (tenant_id, entra_id, display_name, kind, dynamic, entra_member_count, synced_member_count,
                        created_at, updated_at)
VALUES (@tenant_id, @entra_id, @display_name, 'local', false, 0, 0, @at::timestamptz, @at::timestamptz);

-- name: DeleteGroupMembers :exec
DELETE FROM app_group_members WHERE tenant_id = @tenant_id AND group_id = @group_id;

-- name: DeleteGroupBindings :exec
DELETE FROM app_group_grants WHERE tenant_id = @tenant_id AND group_id = @group_id;

-- name: DeleteAppGroup :exec
DELETE FROM app_groups WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: ExcludeGroup :exec
-- A group deleted here stays out of the app (see plan.DecideGroup).
INSERT INTO app_group_exclusions (tenant_id, entra_id, deleted_at)
VALUES (@tenant_id, @entra_id, @at::timestamptz)
ON CONFLICT (tenant_id, entra_id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at;
