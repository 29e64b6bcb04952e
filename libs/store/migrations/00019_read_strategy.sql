-- Read strategies: how a full run reads the directory (plan.ReadStrategy).
--
--   * sync_runs.read_strategy: 'full' lists every user, group and
--     group's direct members; 'transitive' lists only the users in the
--     tenant's scope groups' nested memberships (each scope group's
--     transitiveMembers), as users pages plus one transitive list per
--     scope group. Chosen when the run is created; the fetcher reads
--     the run's way unless the tenant's settings no longer allow it, and
--     finalization goes by the pages a run has, not by this column: a
--     run with transitive pages is a scoped listing, which tombstones
--     no user for being outside it and takes its scope from those pages.

-- +goose Up
ALTER TABLE sync_runs
    ADD COLUMN read_strategy text NOT NULL DEFAULT 'full' CHECK (read_strategy IN ('full', 'transitive'));

-- +goose Down
ALTER TABLE sync_runs DROP COLUMN read_strategy;
