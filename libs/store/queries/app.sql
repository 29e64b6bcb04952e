-- name: ListAppUsers
-- Keyset pagination in Entra id order; one row more than asked says
-- whether there is a next page.
SELECT a.entra_id, a.email, a.display_name, a.enabled, a.license, a.license_disabled_at,
       a.display_name_edited_at IS NOT NULL OR a.email_edited_at IS NOT NULL,
       ARRAY(SELECT r.role FROM app_user_roles r WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role)
FROM app_users a
WHERE a.tenant_id = $1 AND a.entra_id > $2
ORDER BY a.entra_id
LIMIT $3;

-- name: GetAppUser
SELECT a.entra_id, a.email, a.display_name, a.enabled, a.license, a.license_disabled_at,
       a.display_name_edited_at IS NOT NULL OR a.email_edited_at IS NOT NULL,
       ARRAY(SELECT r.role FROM app_user_roles r WHERE r.tenant_id = a.tenant_id AND r.user_id = a.entra_id ORDER BY r.role)
FROM app_users a
WHERE a.tenant_id = $1 AND a.entra_id = $2;

-- name: AppUserForEdit
-- The user under its row lock, with the tenant's seats, the seats in use
-- and the tenant's newest run (a seat given by hand counts as granted
-- then).
SELECT a.display_name, a.email, a.enabled, a.license, t.seats,
       (SELECT count(*) FROM app_users u WHERE u.tenant_id = $1 AND u.license = 'assigned')::integer,
       t.last_run_seq
FROM app_users a
JOIN tenants t ON t.id = a.tenant_id
WHERE a.tenant_id = $1 AND a.entra_id = $2
FOR UPDATE OF a;

-- name: EditUserName
UPDATE app_users SET display_name = $3, display_name_edited_at = $4, updated_at = $4
WHERE tenant_id = $1 AND entra_id = $2;

-- name: EditUserEmail
UPDATE app_users SET email = $3, email_edited_at = $4, updated_at = $4
WHERE tenant_id = $1 AND entra_id = $2;

-- name: DisableUserLicense
UPDATE app_users
SET license = 'disabled', license_disabled_at = $3, license_run_seq = NULL, licensed_at = NULL, updated_at = $3
WHERE tenant_id = $1 AND entra_id = $2 AND license_disabled_at IS NULL;

-- name: AssignUserLicense
UPDATE app_users
SET license = 'assigned', license_disabled_at = NULL, license_run_seq = $3, licensed_at = $4, updated_at = $4
WHERE tenant_id = $1 AND entra_id = $2;

-- name: DropUserRoles
DELETE FROM app_user_roles
WHERE tenant_id = $1 AND user_id = $2 AND NOT (role = ANY ($3::text[]));

-- name: AddUserRoles
INSERT INTO app_user_roles (tenant_id, user_id, role, granted_at)
SELECT $1, $2, r, $4 FROM unnest($3::text[]) AS r
ON CONFLICT DO NOTHING;

-- name: ListAppGroups
SELECT entra_id, display_name, kind, dynamic, entra_member_count, synced_member_count
FROM app_groups
WHERE tenant_id = $1 AND entra_id > $2
ORDER BY entra_id
LIMIT $3;

-- name: ListAppGroupMembers
SELECT user_id
FROM app_group_members
WHERE tenant_id = $1 AND group_id = $2 AND user_id > $3
ORDER BY user_id
LIMIT $4;
