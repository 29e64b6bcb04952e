-- Entra ID's member counts move by what changed since they were last
-- counted, instead of being recounted for every group above a changed
-- edge: under a company-wide group that recount read every user of the
-- tenant, in a delta round that changed a few hundred edges.
--
--   * dir_count_changes: the edges added, retyped or removed since the
--     counts were last refreshed, each with its member type then (NULL:
--     the edge was not there). Only an edge's first change since the
--     refresh is kept: it alone knows the edge as the counts saw it. The
--     statements that write dir_members record them; nothing is recorded
--     while the tenant's memberships are stale, as the next refresh then
--     recounts every group.
--   * app_groups.entra_counted: the last refresh counted the group. A
--     group it did not count (new since, or not enabled then) is
--     recounted whole; the others move by the changes.
--
-- Existing groups start uncounted: the first refresh recounts them all.

-- +goose Up
CREATE TABLE dir_count_changes (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id    text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    member_id   text COLLATE "C" NOT NULL CHECK (member_id <> ''),
    type_before text,
    PRIMARY KEY (tenant_id, group_id, member_id)
);

ALTER TABLE app_groups ADD COLUMN entra_counted boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE app_groups DROP COLUMN entra_counted;
DROP TABLE dir_count_changes;
