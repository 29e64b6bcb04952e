-- Roles and sharing permissions granted through nested groups.
--
--   * app_grant_names is the tenant's catalogue of custom roles and
--     sharing permissions. The built-in roles (plan.BuiltinRoles:
--     Administrator, License manager) are not rows: they always exist,
--     in every tenant, and cannot be deleted.
--   * app_group_grants binds a role or a sharing permission to a group.
--     A group id need not be in app_groups forever: a binding outlives
--     the group leaving the app (the grants go, the binding stays).
--   * app_user_grants holds what users hold through groups, as the last
--     applied plan left it; group_id is the bound group the grant was
--     first given through (for the reason of a later revocation). Direct
--     roles stay in app_user_roles: a user's effective roles are both.
--   * plans gain grantSharing and revokeSharing; their items carry the
--     permission's name in role, as role items carry the role's.

-- +goose Up
CREATE TABLE app_grant_names (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('role', 'sharing')),
    name       text NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, kind, name)
);

CREATE TABLE app_group_grants (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id   text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    kind       text NOT NULL CHECK (kind IN ('role', 'sharing')),
    name       text NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, group_id, kind, name)
);

-- DELETE of a role asks whether any group still binds it.
CREATE INDEX app_group_grants_name ON app_group_grants (tenant_id, kind, name);

CREATE TABLE app_user_grants (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    text COLLATE "C" NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('role', 'sharing')),
    name       text NOT NULL CHECK (name <> ''),
    group_id   text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, kind, name),
    FOREIGN KEY (tenant_id, user_id) REFERENCES app_users (tenant_id, entra_id)
        DEFERRABLE INITIALLY DEFERRED
);

-- Notification recipients: the holders of a role.
CREATE INDEX app_user_grants_name ON app_user_grants (tenant_id, kind, name);

ALTER TABLE sync_plan_items DROP CONSTRAINT sync_plan_items_action_check;
ALTER TABLE sync_plan_items DROP CONSTRAINT sync_plan_items_check1;
ALTER TABLE sync_plan_items
    ADD CONSTRAINT sync_plan_items_action_check CHECK (action IN (
        'createUser', 'updateUser', 'disableUser', 'enableUser', 'removeUser',
        'assignLicense', 'revokeLicense', 'addMembership', 'removeMembership',
        'grantRole', 'revokeRole', 'grantSharing', 'revokeSharing',
        'createGroup', 'updateGroup', 'removeGroup')),
    ADD CONSTRAINT sync_plan_items_check1
        CHECK ((action IN ('grantRole', 'revokeRole', 'grantSharing', 'revokeSharing')) = (role IS NOT NULL));

-- +goose Down
DELETE FROM sync_plan_items WHERE action IN ('grantSharing', 'revokeSharing');
ALTER TABLE sync_plan_items DROP CONSTRAINT sync_plan_items_check1;
ALTER TABLE sync_plan_items DROP CONSTRAINT sync_plan_items_action_check;
ALTER TABLE sync_plan_items
    ADD CONSTRAINT sync_plan_items_action_check CHECK (action IN (
        'createUser', 'updateUser', 'disableUser', 'enableUser', 'removeUser',
        'assignLicense', 'revokeLicense', 'addMembership', 'removeMembership',
        'grantRole', 'revokeRole', 'createGroup', 'updateGroup', 'removeGroup')),
    ADD CONSTRAINT sync_plan_items_check1
        CHECK ((action IN ('grantRole', 'revokeRole')) = (role IS NOT NULL));
DROP TABLE app_user_grants;
DROP TABLE app_group_grants;
DROP TABLE app_grant_names;
