-- A group's details as the app shows them, and devices as mirror rows.
--
--   * dir_groups.renewed_at: Graph's renewedDateTime (creation or last
--     renewal), NULL when Graph gave none.
--   * dir_devices: the devices found in member lists, with their names
--     (the edges stay in dir_members). A device row carries the version
--     of the member-list entry that last wrote it, like every mirror row;
--     finalization deletes the devices no edge names any more.
--   * app_groups.mail, description, membership_rule, entra_updated_at:
--     follow Entra ID through the plan while the group is enabled, and
--     stay as last synced otherwise, like its name.

-- +goose Up
ALTER TABLE dir_groups ADD COLUMN renewed_at timestamptz;

CREATE TABLE dir_devices (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id     text COLLATE "C" NOT NULL CHECK (entra_id <> ''),
    display_name text NOT NULL,
    v_run_seq    bigint NOT NULL,
    v_page       integer NOT NULL,
    v_idx        integer NOT NULL,
    PRIMARY KEY (tenant_id, entra_id)
);

ALTER TABLE app_groups
    ADD COLUMN mail text NOT NULL DEFAULT '',
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN membership_rule text NOT NULL DEFAULT '',
    ADD COLUMN entra_updated_at timestamptz;

-- +goose Down
ALTER TABLE app_groups DROP COLUMN entra_updated_at, DROP COLUMN membership_rule, DROP COLUMN description,
    DROP COLUMN mail;
DROP TABLE dir_devices;
ALTER TABLE dir_groups DROP COLUMN renewed_at;
