-- Users recorded as changed, so that a plan decides the users whose facts
-- changed since the plan the app follows instead of every user of the
-- tenant (a delta round with 1% churn read and decided all 100k users of
-- a large tenant, and wrote a row for each).
--
--   * dir_users.changed_run_seq: the run whose page or tombstone last
--     changed the user's row (its content, or whether it is deleted).
--     UpsertUsers, TombstoneUsers and TombstoneUnseenUsers set it when
--     they change the row and leave it when they only advance its
--     version, which stays a HOT update. Rows written before this
--     migration have 0, which no run has.
--   * app_dirty_users: users an admin edited through the api (name,
--     email, license, roles), until a plan is applied.
--   * tenants.memberships_run_seq (00020) is the newest run whose applied
--     plan the app follows, for its users as for its memberships: a user
--     changed by a newer run, or marked, is what the next plan decides
--     again (plan.go). tenants.memberships_stale makes it decide every
--     user, as it recomputes every membership.
--
-- Every tenant's next plan decides every user: the marks start now.

-- +goose Up
ALTER TABLE dir_users ADD COLUMN changed_run_seq bigint NOT NULL DEFAULT 0;

CREATE INDEX dir_users_changed ON dir_users (tenant_id, changed_run_seq);

CREATE TABLE app_dirty_users (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id  text COLLATE "C" NOT NULL CHECK (entra_id <> ''),
    PRIMARY KEY (tenant_id, entra_id)
);

UPDATE tenants SET memberships_stale = true;

-- +goose Down
DROP TABLE app_dirty_users;
DROP INDEX dir_users_changed;
ALTER TABLE dir_users DROP COLUMN changed_run_seq;
