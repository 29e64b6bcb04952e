-- Membership changes recorded edge by edge, so that an incremental plan
-- recomputes the memberships of the users below a changed edge instead
-- of every user of every group above it (a change anywhere under a
-- company-wide group recomputed everyone).
--
--   * dir_members.changed_run_seq, changed_page: the page that added the
--     edge or changed its member's type (the run's seq and the page
--     number). UpsertMembers sets them when it inserts an edge or
--     retypes one, and leaves them when it only advances the edge's
--     version, so the statement itself tells which entries of a page
--     changed the mirror. An upsert that leaves them stays a HOT update.
--     Edges written before this migration have 0 and 0, which no page
--     has (run seqs start at 1).
--   * dir_removed_edges: edges a run removed (a full run's stale-edge
--     sweep, a delta page's removal), with the newest run that removed
--     each, until a plan of that run or a newer one is applied.
--   * tenants.memberships_run_seq: the newest run whose applied plan the
--     app's memberships follow.
--   * dir_changed_edges: the edges added or retyped by a run newer than
--     that, and the removed edges: what the next plan recomputes (with
--     dir_dirty_groups, which now holds only the api's marks).

-- +goose Up
ALTER TABLE dir_members
    ADD COLUMN changed_run_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN changed_page integer NOT NULL DEFAULT 0;

CREATE INDEX dir_members_changed ON dir_members (tenant_id, changed_run_seq);

CREATE TABLE dir_removed_edges (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id  text COLLATE "C" NOT NULL CHECK (group_id <> ''),
    member_id text COLLATE "C" NOT NULL CHECK (member_id <> ''),
    run_seq   bigint NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_id)
);

ALTER TABLE tenants ADD COLUMN memberships_run_seq bigint NOT NULL DEFAULT 0;

CREATE VIEW dir_changed_edges AS
SELECT e.tenant_id, e.group_id, e.member_id
FROM dir_members e
JOIN tenants t ON t.id = e.tenant_id
WHERE e.changed_run_seq > t.memberships_run_seq
UNION ALL
SELECT r.tenant_id, r.group_id, r.member_id
FROM dir_removed_edges r;

-- +goose Down
DROP VIEW dir_changed_edges;
ALTER TABLE tenants DROP COLUMN memberships_run_seq;
DROP TABLE dir_removed_edges;
DROP INDEX dir_members_changed;
ALTER TABLE dir_members DROP COLUMN changed_run_seq, DROP COLUMN changed_page;
