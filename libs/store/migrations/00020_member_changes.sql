-- Which page last added a membership edge or changed its member's type
-- (dir_members.changed_run_seq, changed_page: the run's seq and the page
-- number). UpsertMembers sets them when it inserts an edge or retypes
-- one, and leaves them when it only advances the edge's version, so the
-- statement itself tells which entries of a page changed the mirror:
-- marking the group dirty and noting drift no longer look the page's
-- entries up in dir_members a second time. Edges written before this
-- migration have 0 and 0, which no page has (run seqs start at 1). No
-- index covers them: an upsert that leaves them stays a HOT update.

-- +goose Up
ALTER TABLE dir_members
    ADD COLUMN changed_run_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN changed_page integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE dir_members DROP COLUMN changed_run_seq, DROP COLUMN changed_page;
