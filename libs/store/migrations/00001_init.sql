-- The first slice of entrasync's schema: tenants, sync runs and leases; the
-- directory mirror that pages are applied to in any order; and the
-- application side derived from it when a run is complete.
--
-- Conventions:
--   * every table that holds a tenant's data has tenant_id as the first
--     column of its primary key, and every query filters on it;
--   * Entra object ids are text in the "C" collation, so that ordering by
--     them (seat hand-out, keyset pagination) is byte order everywhere,
--     whatever the database's default collation;
--   * no column defaults to now(): every time comes from the caller's
--     clock, so two databases fed the same events end up equal.

-- +goose Up

CREATE TABLE tenants (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL CHECK (name <> ''),
    entra_tenant_id      text NOT NULL CHECK (entra_tenant_id <> ''),
    client_id            text NOT NULL CHECK (client_id <> ''),
    -- AES-GCM sealed with the tenant id as associated data (libs/secret).
    client_secret_sealed bytea NOT NULL,
    seats                integer NOT NULL CHECK (seats >= 0),
    sync_interval        interval NOT NULL CHECK (sync_interval > interval '0'),
    -- Last run_seq handed out; runs take the next one under the row lock.
    last_run_seq         bigint NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE sync_runs (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    kind            text NOT NULL CHECK (kind IN ('full')),
    trigger         text NOT NULL CHECK (trigger IN ('manual', 'schedule')),
    -- The schedule slot a scheduled run stands for; one run per slot.
    slot            timestamptz,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'applying', 'succeeded', 'failed')),
    error           text NOT NULL DEFAULT '',
    counts          jsonb NOT NULL DEFAULT '{}',
    pages_total     integer CHECK (pages_total >= 0),
    -- Kept up to date only once the run is over; while it runs, the
    -- number of rows in sync_run_pages is the truth.
    pages_applied   integer NOT NULL DEFAULT 0,
    graph_requests  bigint NOT NULL DEFAULT 0,
    graph_throttled bigint NOT NULL DEFAULT 0,
    graph_retries   bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    fetched_at      timestamptz,
    finished_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, seq),
    UNIQUE (tenant_id, slot),
    CHECK ((trigger = 'schedule') = (slot IS NOT NULL))
);

-- Runs whose job may have been lost between insert and publish.
CREATE INDEX sync_runs_queued ON sync_runs (created_at) WHERE status = 'queued';

-- One fetcher at a time reads a tenant's directory.
CREATE TABLE tenant_leases (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    holder     text NOT NULL CHECK (holder <> ''),
    expires_at timestamptz NOT NULL
);

-- Which objects each applied page of a run contained. It makes page
-- applies idempotent (a page is applied once), tells finalization what the
-- run saw without rewriting mirror rows, and carries Graph's transitive
-- member sets. A run's rows are deleted when the run ends.
CREATE TABLE sync_run_pages (
    tenant_id  uuid NOT NULL,
    run_id     uuid NOT NULL,
    page       integer NOT NULL CHECK (page >= 0),
    kind       text NOT NULL CHECK (kind IN ('users', 'groups', 'members', 'transitive')),
    -- For members and transitive pages: whose list, which part, the end?
    group_id   text COLLATE "C",
    part       integer CHECK (part >= 0),
    last       boolean,
    object_ids text[] COLLATE "C" NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, run_id, page),
    FOREIGN KEY (tenant_id, run_id) REFERENCES sync_runs (tenant_id, id) ON DELETE CASCADE,
    CHECK ((kind IN ('members', 'transitive')) = (group_id IS NOT NULL AND part IS NOT NULL AND last IS NOT NULL))
);

-- Directory mirror. Each row keeps the version (v_run_seq, v_page, v_idx)
-- of the page entry that last changed it; a write lands only when it is
-- newer and different. Deleted objects stay as tombstones (deleted = true)
-- with the version of the run that found them gone, so a late page of an
-- older run cannot bring them back.

CREATE TABLE dir_users (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id            text COLLATE "C" NOT NULL CHECK (entra_id <> ''),
    display_name        text NOT NULL,
    mail                text NOT NULL,
    user_principal_name text NOT NULL,
    given_name          text NOT NULL,
    surname             text NOT NULL,
    job_title           text NOT NULL,
    department          text NOT NULL,
    user_type           text NOT NULL,
    account_enabled     boolean NOT NULL,
    deleted             boolean NOT NULL DEFAULT false,
    v_run_seq           bigint NOT NULL,
    v_page              integer NOT NULL,
    v_idx               integer NOT NULL,
    PRIMARY KEY (tenant_id, entra_id)
);

CREATE TABLE dir_groups (
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id         text COLLATE "C" NOT NULL CHECK (entra_id <> ''),
    display_name     text NOT NULL,
    description      text NOT NULL,
    mail             text NOT NULL,
    group_types      text[] NOT NULL,
    security_enabled boolean NOT NULL,
    mail_enabled     boolean NOT NULL,
    membership_rule  text NOT NULL,
    deleted          boolean NOT NULL DEFAULT false,
    v_run_seq        bigint NOT NULL,
    v_page           integer NOT NULL,
    v_idx            integer NOT NULL,
    PRIMARY KEY (tenant_id, entra_id)
);

-- Direct membership edges, whatever the member is. Edges a complete member
-- list no longer contains are deleted by finalization.
CREATE TABLE dir_members (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id    text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    member_id   text COLLATE "C" NOT NULL CHECK (member_id <> ''),
    member_type text NOT NULL
                CHECK (member_type IN ('user', 'group', 'device', 'orgContact', 'servicePrincipal', 'other')),
    v_run_seq   bigint NOT NULL,
    v_page      integer NOT NULL,
    v_idx       integer NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_id)
);

CREATE INDEX dir_members_member ON dir_members (tenant_id, member_id);

-- Application side, derived from the mirror when a run is complete. Rows
-- are written only when their content changes.

CREATE TABLE app_users (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id        text COLLATE "C" NOT NULL,
    email           text NOT NULL,
    display_name    text NOT NULL,
    given_name      text NOT NULL,
    surname         text NOT NULL,
    job_title       text NOT NULL,
    department      text NOT NULL,
    enabled         boolean NOT NULL,
    -- Seat: 'assigned' holds one of the tenant's seats, 'none' waits for
    -- one, 'disabled' cannot hold one.
    license         text NOT NULL CHECK (license IN ('assigned', 'none', 'disabled')),
    -- The run that granted the seat: seats are taken back from the most
    -- recently granted first.
    license_run_seq bigint,
    licensed_at     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, entra_id),
    CHECK ((license = 'assigned') = (license_run_seq IS NOT NULL AND licensed_at IS NOT NULL)),
    CHECK ((license = 'disabled') = (NOT enabled))
);

CREATE INDEX app_users_seat_holders ON app_users (tenant_id, license_run_seq, entra_id)
    WHERE license = 'assigned';

CREATE TABLE app_groups (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id            text COLLATE "C" NOT NULL,
    display_name        text NOT NULL,
    kind                text NOT NULL
                        CHECK (kind IN ('microsoft365', 'security', 'mailEnabledSecurity', 'distribution')),
    dynamic             boolean NOT NULL,
    -- Users in Graph's transitive member set of the group.
    entra_member_count  integer NOT NULL CHECK (entra_member_count >= 0),
    -- App users in the nested membership computed from the mirror.
    synced_member_count integer NOT NULL CHECK (synced_member_count >= 0),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, entra_id)
);

-- Transitive memberships of app users in groups. The foreign keys to users
-- and groups are checked at commit, and do not cascade, because
-- finalization removes memberships itself (and counts them) in the same
-- transaction as the users and groups they point at.
CREATE TABLE app_group_members (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id  text COLLATE "C" NOT NULL,
    user_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES app_groups (tenant_id, entra_id)
        DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (tenant_id, user_id) REFERENCES app_users (tenant_id, entra_id)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX app_group_members_user ON app_group_members (tenant_id, user_id);

-- +goose Down

DROP TABLE app_group_members;
DROP TABLE app_groups;
DROP TABLE app_users;
DROP TABLE dir_members;
DROP TABLE dir_groups;
DROP TABLE dir_users;
DROP TABLE sync_run_pages;
DROP TABLE tenant_leases;
DROP TABLE sync_runs;
DROP TABLE tenants;
