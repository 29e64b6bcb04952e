-- sync_runs.users_filtered: the run listed users through the tenant's
-- scope.userFilter (RunFetched.users_filtered). The mirror such a run
-- leaves lacks the users the filter hid, and a delta round, which reads
-- only what changed, would never bring them back once the filter is
-- cleared: applying such a run drops the tenant's delta links, so that
-- the next run reads the whole directory.

-- +goose Up
ALTER TABLE sync_runs ADD COLUMN users_filtered boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE sync_runs DROP COLUMN users_filtered;
