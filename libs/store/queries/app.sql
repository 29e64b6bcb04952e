-- name: ListAppUsers
-- Keyset pagination in Entra id order; one row more than asked says
-- whether there is a next page.
SELECT entra_id, email, display_name, enabled, license
FROM app_users
WHERE tenant_id = $1 AND entra_id > $2
ORDER BY entra_id
LIMIT $3;

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
