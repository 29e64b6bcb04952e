-- Drift: what a full read finds that the delta rounds missed.
--
-- A full run of a tenant with saved delta links first reads a delta round
-- from them (the fetcher's catch-up), then lists the whole directory.
--
--   * sync_runs.caught_up: the run's fetch did both (RunFetched.caught_up).
--   * sync_run_drift: while such a tenant's full pages are applied, each
--     entry that differs from the mirror at that moment (a user or group
--     missing, deleted or with other properties; an edge missing or of
--     another type) is noted as a candidate. Finalization adds what it
--     tombstones and the edges it drops, takes away whatever the run's
--     own delta round explains (store/drift.go), and reports the rest as
--     the run's driftUsers, driftGroups and driftMemberships counts.
--     A run's notes are deleted when it is finalized or ends otherwise.

-- +goose Up
ALTER TABLE sync_runs ADD COLUMN caught_up boolean NOT NULL DEFAULT false;

CREATE TABLE sync_run_drift (
    tenant_id uuid NOT NULL,
    run_id    uuid NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('user', 'group', 'member')),
    -- For kind 'member': the group whose list has the edge; '' otherwise.
    group_id  text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL CHECK (object_id <> ''),
    PRIMARY KEY (tenant_id, run_id, kind, group_id, object_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES sync_runs (tenant_id, id) ON DELETE CASCADE,
    CHECK ((kind = 'member') = (group_id <> ''))
);

-- +goose Down
DROP TABLE sync_run_drift;
ALTER TABLE sync_runs DROP COLUMN caught_up;
