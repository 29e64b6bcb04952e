-- sync_plan_items_target (tenant_id, run_id, entra_id, seq) was made for
-- the activity log's lookups by target. That query matches a target as
-- the item's user or its group (entra_id = x OR group_id = x), which one
-- index on entra_id cannot answer: it reads a run's items through the
-- primary key, backwards, and filters. The index served no statement and
-- cost every plan item an insert into a random place of it: 2.5 s of the
-- 6 s it takes to COPY 400k items into the table with its three indexes.

-- +goose Up
DROP INDEX sync_plan_items_target;

-- +goose Down
CREATE INDEX sync_plan_items_target ON sync_plan_items (tenant_id, run_id, entra_id, seq);
