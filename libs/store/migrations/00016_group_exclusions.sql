-- Groups deleted through the API that a sync must not bring back: an
-- admin who disabled or archived a group and then deleted it wants it
-- gone, though Entra ID still has it. Listing the group in the tenant's
-- groups.include imports it again.

-- +goose Up
CREATE TABLE app_group_exclusions (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_id   text COLLATE "C" NOT NULL CHECK (entra_id <> ''),
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, entra_id)
);

-- +goose Down
DROP TABLE app_group_exclusions;
