-- Room for the mirror's version updates.
--
-- Every page entry newer than a mirror row advances its version, even
-- when it repeats the row's content (see UpsertUsers): otherwise a late
-- page of a version in between would win. Such an update changes no
-- indexed column, so Postgres can keep it on the same heap page (a HOT
-- update, no index entry written) when that page has room: leave 20% free.

-- +goose Up
ALTER TABLE dir_users SET (fillfactor = 80);
ALTER TABLE dir_groups SET (fillfactor = 80);
ALTER TABLE dir_members SET (fillfactor = 80);

-- +goose Down
ALTER TABLE dir_users RESET (fillfactor);
ALTER TABLE dir_groups RESET (fillfactor);
ALTER TABLE dir_members RESET (fillfactor);
