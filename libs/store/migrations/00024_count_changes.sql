-- A group's member counts move by what changed since they were last
-- counted, instead of being counted again: Entra ID's count was recounted
-- for every group above a changed edge, and the app's for every group
-- whose memberships a plan changed. Under a company-wide group either
-- read every user of the tenant, in a delta round that changed a few
-- hundred edges and memberships.
--
--   * dir_removed_edges becomes dir_edge_changes: the edges a run
--     removed, as before, and now also those it added or retyped, each
--     with its member type when the counts were last refreshed
--     (type_before; NULL: the edge was not there). Only an edge's first
--     change since that refresh sets it: it alone knows the edge as the
--     counts saw it. Additions are recorded only while the tenant's
--     memberships are fresh (a stale tenant's plan recomputes, and its
--     counts recount, everything).
--   * dir_edge_changes.counted: a refresh already counted the change. A
--     refresh counts every change; the rows of runs newer than the plan
--     applied outlive it (the next plan recomputes their users' own
--     memberships), marked counted so that the next refresh does not
--     count them again. Rows from before this migration have no
--     type_before and start counted.
--   * dir_changed_edges, the plan's view, reads the renamed table.
--   * app_groups.counted: the last refresh counted the group (both
--     counts). A group it did not count (new since, or not enabled then:
--     a group switched off keeps its counts while it loses members) is
--     counted whole; the others move by the edge changes (Entra ID's
--     count) and by the plan's membership items (the app's). Existing
--     groups start uncounted: the first refresh counts them all.

-- +goose Up
DROP VIEW dir_changed_edges;
ALTER TABLE dir_removed_edges RENAME TO dir_edge_changes;
ALTER TABLE dir_edge_changes RENAME CONSTRAINT dir_removed_edges_pkey TO dir_edge_changes_pkey;
ALTER TABLE dir_edge_changes
    ADD COLUMN type_before text,
    ADD COLUMN counted boolean NOT NULL DEFAULT true;
ALTER TABLE dir_edge_changes ALTER COLUMN counted SET DEFAULT false;

CREATE VIEW dir_changed_edges AS
SELECT e.tenant_id, e.group_id, e.member_id
FROM dir_members e
JOIN tenants t ON t.id = e.tenant_id
WHERE e.changed_run_seq > t.memberships_run_seq
UNION ALL
SELECT c.tenant_id, c.group_id, c.member_id
FROM dir_edge_changes c;

ALTER TABLE app_groups ADD COLUMN counted boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE app_groups DROP COLUMN counted;
DROP VIEW dir_changed_edges;
DELETE FROM dir_edge_changes c
WHERE EXISTS (SELECT 1 FROM dir_members e
              WHERE e.tenant_id = c.tenant_id AND e.group_id = c.group_id AND e.member_id = c.member_id);
ALTER TABLE dir_edge_changes DROP COLUMN counted, DROP COLUMN type_before;
ALTER TABLE dir_edge_changes RENAME CONSTRAINT dir_edge_changes_pkey TO dir_removed_edges_pkey;
ALTER TABLE dir_edge_changes RENAME TO dir_removed_edges;
CREATE VIEW dir_changed_edges AS
SELECT e.tenant_id, e.group_id, e.member_id
FROM dir_members e
JOIN tenants t ON t.id = e.tenant_id
WHERE e.changed_run_seq > t.memberships_run_seq
UNION ALL
SELECT r.tenant_id, r.group_id, r.member_id
FROM dir_removed_edges r;
