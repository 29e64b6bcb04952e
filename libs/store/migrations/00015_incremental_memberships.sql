-- Memberships and grants recomputed for what changed, not for the whole
-- tenant every run.
--
--   * dir_dirty_groups: groups whose direct member list in the mirror
--     changed (an edge added, dropped or retyped), or whose part in grants
--     changed through the API (bindings, switch, archive, delete), since
--     the app's memberships were last planned from them. run_seq is the
--     newest run that marked the group (0: the API); applying the plan of
--     run S clears the marks of runs up to S, so a mark a later run made
--     meanwhile stays for that run.
--   * tenants.memberships_stale: the next plan recomputes every membership
--     and grant of the tenant (a new tenant, a settings change); cleared
--     when such a plan is applied.
--   * plan_work_affected: while a plan is built, the groups whose nested
--     memberships it recomputes (the marked ones, those the plan changes,
--     and every group above them), the users whose presence in the app
--     changes, and the users whose grants it recomputes.

-- +goose Up
CREATE TABLE dir_dirty_groups (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id  text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    run_seq   bigint NOT NULL CHECK (run_seq >= 0),
    PRIMARY KEY (tenant_id, group_id)
);

ALTER TABLE tenants ADD COLUMN memberships_stale boolean NOT NULL DEFAULT true;

CREATE UNLOGGED TABLE plan_work_affected (
    tenant_id uuid NOT NULL,
    run_id    uuid NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('group', 'user', 'grantee')),
    id        text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, run_id, kind, id)
);

-- +goose Down
DROP TABLE plan_work_affected;
ALTER TABLE tenants DROP COLUMN memberships_stale;
DROP TABLE dir_dirty_groups;
