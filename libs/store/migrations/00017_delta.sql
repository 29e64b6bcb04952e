-- Delta runs: a run may read only what changed in Entra ID since the
-- tenant's saved Graph delta links (kind 'delta').
--
--   * sync_run_pages kinds 'users_delta' and 'groups_delta' record a delta
--     run's pages (object_ids: every id the page mentions). They are not
--     listings: finalization tombstones only from 'users' / 'groups'
--     pages and drops edges only for complete 'members' lists, so a delta
--     run judges nothing gone for being unseen.
--   * dir_member_removals: versioned tombstones of direct edges a delta
--     page took out, so that an older page adding the edge, applied late,
--     does not bring it back (dir_users and dir_groups keep theirs in
--     their rows). A run's are dropped when it is finalized: by then every
--     run up to it is over and sends nothing more.
--   * sync_runs.users_delta_link / groups_delta_link: the links the run's
--     fetch ended with (RunFetched); NULL when it took none.
--   * tenant_delta_links: the links the tenant's next delta round starts
--     from, copied from a run in the transaction that applies its plan,
--     and only from a run newer than the one that saved them.

-- +goose Up
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_kind_check;
ALTER TABLE sync_runs
    ADD CONSTRAINT sync_runs_kind_check CHECK (kind IN ('full', 'delta')),
    ADD COLUMN users_delta_link  text CHECK (users_delta_link <> ''),
    ADD COLUMN groups_delta_link text CHECK (groups_delta_link <> '');

ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_kind_check;
ALTER TABLE sync_run_pages
    ADD CONSTRAINT sync_run_pages_kind_check
        CHECK (kind IN ('users', 'groups', 'members', 'transitive', 'unreadable', 'users_delta', 'groups_delta'));

CREATE TABLE dir_member_removals (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id  text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    member_id text COLLATE "C" NOT NULL CHECK (member_id <> ''),
    v_run_seq bigint NOT NULL,
    v_page    integer NOT NULL,
    v_idx     integer NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_id)
);

CREATE TABLE tenant_delta_links (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource  text NOT NULL CHECK (resource IN ('users', 'groups')),
    link      text NOT NULL CHECK (link <> ''),
    -- When the run that took the link fetched (its RunFetched).
    taken_at  timestamptz NOT NULL,
    run_seq   bigint NOT NULL CHECK (run_seq > 0),
    PRIMARY KEY (tenant_id, resource)
);

-- +goose Down
DROP TABLE tenant_delta_links;
DROP TABLE dir_member_removals;
DELETE FROM sync_run_pages WHERE kind IN ('users_delta', 'groups_delta');
ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_kind_check;
ALTER TABLE sync_run_pages
    ADD CONSTRAINT sync_run_pages_kind_check
        CHECK (kind IN ('users', 'groups', 'members', 'transitive', 'unreadable'));
DELETE FROM sync_runs WHERE kind = 'delta';
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_kind_check;
ALTER TABLE sync_runs
    DROP COLUMN groups_delta_link,
    DROP COLUMN users_delta_link,
    ADD CONSTRAINT sync_runs_kind_check CHECK (kind IN ('full'));
