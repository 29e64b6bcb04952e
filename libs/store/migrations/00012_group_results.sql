-- A group Graph would not list the members of.
--
-- A fetcher that gets 403 for one group's member list (a hidden-membership
-- group without Member.Read.Hidden, say) publishes an `unreadable` page for
-- the group and the run goes on. The page is recorded with Graph's error;
-- the group's member list is then incomplete in this run, so its edges are
-- kept as last read (DropStaleEdges drops only edges of complete lists).
-- Applying the run's plan writes the groups whose result changed: ok, or
-- the error (rows that stay as they were are not written again).

-- +goose Up
ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_kind_check;
ALTER TABLE sync_run_pages
    ADD COLUMN error text,
    ADD CONSTRAINT sync_run_pages_kind_check
        CHECK (kind IN ('users', 'groups', 'members', 'transitive', 'unreadable')),
    ADD CONSTRAINT sync_run_pages_unreadable
        CHECK ((kind = 'unreadable') = (error IS NOT NULL AND group_id IS NOT NULL));

ALTER TABLE app_groups
    ADD COLUMN last_ok    boolean NOT NULL DEFAULT true,
    ADD COLUMN last_error text NOT NULL DEFAULT '',
    ADD CONSTRAINT app_groups_last_result CHECK (last_ok = (last_error = ''));

-- +goose Down
ALTER TABLE app_groups DROP CONSTRAINT app_groups_last_result, DROP COLUMN last_error, DROP COLUMN last_ok;
DELETE FROM sync_run_pages WHERE kind = 'unreadable';
ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_unreadable, DROP CONSTRAINT sync_run_pages_kind_check;
ALTER TABLE sync_run_pages DROP COLUMN error,
    ADD CONSTRAINT sync_run_pages_kind_check CHECK (kind IN ('users', 'groups', 'members', 'transitive'));
