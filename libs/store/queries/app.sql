-- name: ListAppUsers :many
-- Keyset pagination in Entra id order; one row more than asked says
-- whether there is a next page.
SELECT a.entra_id, a.email, a.display_name, a.enabled, a.license, a.license_disabled_at,
       (a.display_name_edited_at IS NOT NULL OR a.email_edited_at IS NOT NULL)::boolean AS edited,
       ARRAY(SELECT r.role FROM app_user_roles r WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role)::text[] AS roles
FROM app_users a
WHERE a.tenant_id = @tenant_id AND a.entra_id > @after
ORDER BY a.entra_id
LIMIT @max_rows;

-- name: GetAppUser :one
SELECT a.entra_id, a.email, a.display_name, a.enabled, a.license, a.license_disabled_at,
       (a.display_name_edited_at IS NOT NULL OR a.email_edited_at IS NOT NULL)::boolean AS edited,
       ARRAY(SELECT r.role FROM app_user_roles r WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role)::text[] AS roles
FROM app_users a
WHERE a.tenant_id = @tenant_id AND a.entra_id = @entra_id;

-- name: AppUserForEdit :one
-- The user under its row lock, with the tenant's seats, the seats in use
-- and the tenant's newest run (a seat given by hand counts as granted
-- then).
SELECT a.display_name, a.email, a.enabled, a.license, t.seats,
       (SELECT count(*) FROM app_users u WHERE u.tenant_id = @tenant_id AND u.license = 'assigned')::integer AS seats_used,
       t.last_run_seq
FROM app_users a
JOIN tenants t ON t.id = a.tenant_id
WHERE a.tenant_id = @tenant_id AND a.entra_id = @entra_id
FOR UPDATE OF a;

-- name: EditUserName :execrows
UPDATE app_users SET display_name = @display_name, display_name_edited_at = @at::timestamptz, updated_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: EditUserEmail :execrows
UPDATE app_users SET email = @email, email_edited_at = @at::timestamptz, updated_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: DisableUserLicense :execrows
UPDATE app_users
SET license = 'disabled', license_disabled_at = @at::timestamptz, license_run_seq = NULL, licensed_at = NULL, updated_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND entra_id = @entra_id AND license_disabled_at IS NULL;

-- name: AssignUserLicense :execrows
UPDATE app_users
SET license = 'assigned', license_disabled_at = NULL, license_run_seq = @run_seq::bigint, licensed_at = @at::timestamptz, updated_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: DropUserRoles :execrows
DELETE FROM app_user_roles
WHERE tenant_id = @tenant_id AND user_id = @user_id AND NOT (role = ANY (@roles::text[]));

-- name: AddUserRoles :execrows
INSERT INTO app_user_roles (tenant_id, user_id, role, granted_at)
SELECT @tenant_id, @user_id, r, @at::timestamptz FROM unnest(@roles::text[]) AS r
ON CONFLICT DO NOTHING;

-- name: ListAppGroups :many
-- With each group's last result, as of the tenant's last applied run.
SELECT entra_id, display_name, kind, dynamic, status, entra_member_count, synced_member_count, last_ok, last_error,
       (SELECT r.finished_at FROM sync_runs r
        WHERE r.tenant_id = @tenant_id AND r.status = 'succeeded'
        ORDER BY r.finished_at DESC, r.seq DESC LIMIT 1) AS last_result_at
FROM app_groups
WHERE tenant_id = @tenant_id AND entra_id > @after
ORDER BY entra_id
LIMIT @max_rows;

-- name: ListAppGroupMembers :many
SELECT user_id
FROM app_group_members
WHERE tenant_id = @tenant_id AND group_id = @group_id AND user_id > @after
ORDER BY user_id
LIMIT @max_rows;

-- name: GetAppGroup :one
-- One group with its details and last result (as ListAppGroups).
SELECT entra_id, display_name, kind, dynamic, status, switched_off, entra_member_count, synced_member_count,
       last_ok, last_error, mail, description, membership_rule, entra_updated_at,
       (SELECT r.finished_at FROM sync_runs r
        WHERE r.tenant_id = @tenant_id AND r.status = 'succeeded'
        ORDER BY r.finished_at DESC, r.seq DESC LIMIT 1) AS last_result_at
FROM app_groups
WHERE tenant_id = @tenant_id AND entra_id = @entra_id;

-- name: GroupNestedGroups :many
-- The groups directly in a group's member list as last read, named as
-- the app shows them, else as Entra ID does.
SELECT e.member_id AS entra_id,
       COALESCE(ag.display_name, dg.display_name, '')::text AS display_name
FROM dir_members e
LEFT JOIN app_groups ag ON ag.tenant_id = @tenant_id AND ag.entra_id = e.member_id
LEFT JOIN dir_groups dg ON dg.tenant_id = @tenant_id AND dg.entra_id = e.member_id
WHERE e.tenant_id = @tenant_id AND e.group_id = @group_id AND e.member_type = 'group'
ORDER BY e.member_id
LIMIT @max_rows;

-- name: GroupDevices :many
-- The devices directly in a group's member list as last read.
SELECT e.member_id AS entra_id, COALESCE(d.display_name, '')::text AS display_name
FROM dir_members e
LEFT JOIN dir_devices d ON d.tenant_id = @tenant_id AND d.entra_id = e.member_id
WHERE e.tenant_id = @tenant_id AND e.group_id = @group_id AND e.member_type = 'device'
ORDER BY e.member_id
LIMIT @max_rows;

-- name: GroupMemberTypeCounts :one
-- How many of each kind a group's member list holds, as last read.
SELECT count(*) FILTER (WHERE member_type = 'group') AS groups,
       count(*) FILTER (WHERE member_type = 'device') AS devices,
       count(*) FILTER (WHERE member_type = 'orgContact') AS contacts
FROM dir_members
WHERE tenant_id = @tenant_id AND group_id = @group_id;
