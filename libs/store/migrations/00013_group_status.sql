-- Which groups are synced, and their status.
--
--   * app_groups.status: 'enabled' (synced every run), 'disabled' (kept as
--     last synced, no longer updated, still granting what it is bound to
--     its members as last synced) or 'orphaned' (deleted in Entra ID or
--     archived here: kept, no longer updated, granting nothing). The plan
--     moves groups between enabled and disabled (the tenant's `groups`
--     setting and the per-group switch) and to orphaned; only DELETE
--     through the API takes an orphaned or disabled group away.
--   * app_groups.switched_off: an admin disabled this one group
--     (PATCH .../groups/{entraId} {enabled: false}).
--   * kind 'local': a group created through the API; no sync changes or
--     removes it.
--   * plan_work_groups.frozen: the group's memberships are kept as the app
--     has them (disabled, orphaned, local), not read from the mirror;
--     plan_work_groups.grants: the group grants what it is bound to (not
--     orphaned).

-- +goose Up
ALTER TABLE app_groups DROP CONSTRAINT app_groups_kind_check;
ALTER TABLE app_groups
    ADD CONSTRAINT app_groups_kind_check
        CHECK (kind IN ('microsoft365', 'security', 'mailEnabledSecurity', 'distribution', 'local')),
    ADD COLUMN status text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled', 'orphaned')),
    ADD COLUMN switched_off boolean NOT NULL DEFAULT false;

ALTER TABLE plan_work_groups
    ADD COLUMN frozen boolean NOT NULL DEFAULT false,
    ADD COLUMN grants boolean NOT NULL DEFAULT true;

-- +goose Down
ALTER TABLE plan_work_groups DROP COLUMN grants, DROP COLUMN frozen;
DELETE FROM app_groups WHERE kind = 'local';
ALTER TABLE app_groups DROP COLUMN switched_off, DROP COLUMN status, DROP CONSTRAINT app_groups_kind_check;
ALTER TABLE app_groups
    ADD CONSTRAINT app_groups_kind_check
        CHECK (kind IN ('microsoft365', 'security', 'mailEnabledSecurity', 'distribution'));
