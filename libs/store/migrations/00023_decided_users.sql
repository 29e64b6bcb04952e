-- plan_work_users holds the users a plan decided, not every user the app
-- keeps: a delta round with 1% churn copied a large tenant's 100k
-- untouched app users into it (half its finalization) only to read them
-- back.
--
--   * A decided user the app has and the plan takes out of it is a row
--     with stays = false (it used to be missing).
--   * An app user without a row was not decided: it stays as it is, with
--     the seat role plan.SteadySeat gives its state. The plan's statements
--     read it from app_users.
--
-- A plan that decides every user (memberships_stale, scope groups) writes
-- a row for every user the app has, as before.

-- +goose Up
ALTER TABLE plan_work_users ADD COLUMN stays boolean NOT NULL DEFAULT true;

-- +goose Down
DELETE FROM plan_work_users WHERE NOT stays;
ALTER TABLE plan_work_users DROP COLUMN stays;
