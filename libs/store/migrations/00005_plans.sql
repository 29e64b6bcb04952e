-- Plan, guard, then apply.
--
-- A run no longer writes the application side straight from the mirror.
-- When its pages are all in, the reconciler builds a plan (one row per
-- change, each with a reason), the guard judges it, and it is applied in
-- the same transaction, or held (deletion guard, review mode) until an
-- admin approves or rejects it.
--
--   * tenants gain their settings (everything but seats, as JSON in the
--     API's shape: see libs/plan.Settings), a disconnected state that
--     forgets the secret, the app side's version (bumped by every change
--     to the app side or the settings, so a held plan knows when it went
--     stale) and the seat-shortage episode flag;
--   * runs gain the statuses awaiting_approval and rejected, why a run is
--     held, and its plan's summary;
--   * sync_plan_items holds plans; notification_tasks is the outbox;
--   * app users gain local edits, a license an admin disabled, and roles.

-- +goose Up

ALTER TABLE tenants
    ADD COLUMN settings        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    ADD COLUMN disconnected_at timestamptz,
    ALTER COLUMN client_secret_sealed DROP NOT NULL,
    ADD COLUMN app_version     bigint NOT NULL DEFAULT 0,
    ADD COLUMN app_changed_at  timestamptz,
    ADD COLUMN app_change      text NOT NULL DEFAULT '',
    -- True while the last applied plan left enabled users without a seat:
    -- one seats_exhausted task per shortage, not one per run.
    ADD COLUMN seat_shortage   boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT tenants_secret_while_connected
        CHECK ((disconnected_at IS NULL) = (client_secret_sealed IS NOT NULL));

ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs
    ADD CONSTRAINT sync_runs_status_check
        CHECK (status IN ('queued', 'running', 'applying', 'awaiting_approval', 'rejected', 'succeeded', 'failed')),
    ADD COLUMN held_reason      text CHECK (held_reason IN ('deletion_guard', 'review')),
    -- What the guard or the review found, for people.
    ADD COLUMN held_message     text NOT NULL DEFAULT '',
    -- Counts per action of the run's plan; NULL until it was planned.
    ADD COLUMN plan_summary     jsonb,
    -- The counts the run reports once its plan is applied.
    ADD COLUMN plan_counts      jsonb,
    -- The tenant's app_version the plan was built on.
    ADD COLUMN plan_app_version bigint,
    ADD COLUMN planned_at       timestamptz,
    -- When an admin approved or rejected a held plan.
    ADD COLUMN decided_at       timestamptz,
    ADD CONSTRAINT sync_runs_held
        CHECK ((status = 'awaiting_approval') <= (held_reason IS NOT NULL));

-- One row per change of a run's plan, in the order it was planned (seq).
-- entra_id is the user (or, for group actions, the group); group_id is
-- the group of a membership. before and after hold what the change sets,
-- in the API's field names; reason says why, for people.
CREATE TABLE sync_plan_items (
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    seq          integer NOT NULL CHECK (seq >= 0),
    action       text NOT NULL CHECK (action IN (
                     'createUser', 'updateUser', 'disableUser', 'enableUser', 'removeUser',
                     'assignLicense', 'revokeLicense', 'addMembership', 'removeMembership',
                     'grantRole', 'revokeRole', 'createGroup', 'updateGroup', 'removeGroup')),
    entra_id     text COLLATE "C" NOT NULL CHECK (entra_id <> ''),
    group_id     text COLLATE "C",
    role         text,
    display_name text NOT NULL,
    before       jsonb,
    after        jsonb,
    reason       text NOT NULL CHECK (reason <> ''),
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES sync_runs (tenant_id, id) ON DELETE CASCADE,
    CHECK ((action IN ('addMembership', 'removeMembership')) = (group_id IS NOT NULL)),
    CHECK ((action IN ('grantRole', 'revokeRole')) = (role IS NOT NULL))
);

-- Applying a plan reads it action by action.
CREATE INDEX sync_plan_items_action ON sync_plan_items (tenant_id, run_id, action);

-- The outbox: notification tasks, written in the transaction of the change
-- that causes them. Delivery (a webhook worker) fills the last columns.
-- Ids are derived from (run, kind), so a replayed run writes the same row.
CREATE TABLE notification_tasks (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('seats_exhausted', 'sync_failed', 'run_held')),
    run_id          uuid,
    recipients      text[] NOT NULL,
    subject         text NOT NULL CHECK (subject <> ''),
    body            text NOT NULL,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    last_error      text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX notification_tasks_listing ON notification_tasks (tenant_id, created_at DESC, id DESC);
CREATE INDEX notification_tasks_undelivered ON notification_tasks (created_at) WHERE delivered_at IS NULL;

-- App users: a license an admin disabled stays disabled whatever Entra
-- says (license_disabled_at), and names or emails edited through the API
-- survive syncs while the tenant keeps local edits.
ALTER TABLE app_users
    DROP CONSTRAINT app_users_check1,
    ADD COLUMN license_disabled_at    timestamptz,
    ADD COLUMN display_name_edited_at timestamptz,
    ADD COLUMN email_edited_at        timestamptz,
    ADD CONSTRAINT app_users_license_disabled
        CHECK (license_disabled_at IS NULL OR license = 'disabled'),
    ADD CONSTRAINT app_users_disabled_account
        CHECK (enabled OR license = 'disabled');

-- Roles given to app users directly (through the API).
CREATE TABLE app_user_roles (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    text COLLATE "C" NOT NULL,
    role       text NOT NULL CHECK (role <> ''),
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role),
    FOREIGN KEY (tenant_id, user_id) REFERENCES app_users (tenant_id, entra_id)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX app_user_roles_role ON app_user_roles (tenant_id, role);

-- Working tables of the plan step. Rows live only inside the transaction
-- that plans a run (it deletes them before it commits), so they are never
-- seen by anyone else and need no crash safety: unlogged.
--   plan_work_scope:   users in the tenant's scope groups (nested);
--   plan_work_users:   users in the app after the plan, with their part in
--                      the seat hand-out (0 none, 1 holder, 2 candidate);
--   plan_work_groups:  groups in the app after the plan;
--   plan_work_members: Entra ID's nested memberships of those users in
--                      those groups.
CREATE UNLOGGED TABLE plan_work_scope (
    tenant_id uuid NOT NULL,
    run_id    uuid NOT NULL,
    user_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, run_id, user_id)
);

CREATE UNLOGGED TABLE plan_work_users (
    tenant_id       uuid NOT NULL,
    run_id          uuid NOT NULL,
    entra_id        text COLLATE "C" NOT NULL,
    display_name    text NOT NULL,
    seat            smallint NOT NULL CHECK (seat IN (0, 1, 2)),
    license_run_seq bigint,
    PRIMARY KEY (tenant_id, run_id, entra_id)
);

CREATE INDEX plan_work_users_holders ON plan_work_users (tenant_id, run_id, license_run_seq, entra_id) WHERE seat = 1;

CREATE UNLOGGED TABLE plan_work_groups (
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    entra_id     text COLLATE "C" NOT NULL,
    display_name text NOT NULL,
    PRIMARY KEY (tenant_id, run_id, entra_id)
);

CREATE UNLOGGED TABLE plan_work_members (
    tenant_id uuid NOT NULL,
    run_id    uuid NOT NULL,
    group_id  text COLLATE "C" NOT NULL,
    user_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, run_id, group_id, user_id)
);

-- Held runs are over for the pipeline: pages_applied is read from the
-- run as for finished runs.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION run_pages_applied(r sync_runs, span bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN r.status IN ('succeeded', 'failed', 'awaiting_approval', 'rejected') THEN r.pages_applied
           ELSE (SELECT count(*) FROM sync_run_pages p
                 WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                   AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * span)
                   AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))::int
           END
$$;
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION run_pages_applied(r sync_runs, span bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN r.status IN ('succeeded', 'failed') THEN r.pages_applied
           ELSE (SELECT count(*) FROM sync_run_pages p
                 WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                   AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * span)
                   AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))::int
           END
$$;
-- +goose StatementEnd
DROP TABLE plan_work_members;
DROP TABLE plan_work_groups;
DROP TABLE plan_work_users;
DROP TABLE plan_work_scope;
DROP TABLE app_user_roles;
ALTER TABLE app_users
    DROP CONSTRAINT app_users_disabled_account,
    DROP CONSTRAINT app_users_license_disabled,
    DROP COLUMN email_edited_at,
    DROP COLUMN display_name_edited_at,
    DROP COLUMN license_disabled_at,
    ADD CONSTRAINT app_users_check1 CHECK ((license = 'disabled') = (NOT enabled));
DROP TABLE notification_tasks;
DROP TABLE sync_plan_items;
ALTER TABLE sync_runs
    DROP CONSTRAINT sync_runs_held,
    DROP COLUMN decided_at,
    DROP COLUMN planned_at,
    DROP COLUMN plan_app_version,
    DROP COLUMN plan_counts,
    DROP COLUMN plan_summary,
    DROP COLUMN held_message,
    DROP COLUMN held_reason,
    DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs
    ADD CONSTRAINT sync_runs_status_check
        CHECK (status IN ('queued', 'running', 'applying', 'succeeded', 'failed'));
ALTER TABLE tenants
    DROP CONSTRAINT tenants_secret_while_connected,
    DROP COLUMN seat_shortage,
    DROP COLUMN app_change,
    DROP COLUMN app_changed_at,
    DROP COLUMN app_version,
    ALTER COLUMN client_secret_sealed SET NOT NULL,
    DROP COLUMN disconnected_at,
    DROP COLUMN settings;
