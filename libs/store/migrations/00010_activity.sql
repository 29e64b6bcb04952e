-- The activity log: what was done to a tenant, by whom.
--
-- Two sources make it up. What a sync applied is its plan: the rows of
-- sync_plan_items of the tenant's succeeded runs, which nothing changes
-- once applied, are read as the log's sync entries (copying them would
-- double the writes of a first sync). What an admin did through the API
-- goes to activity_log, in the transaction of the change itself.
-- activity_log is append-only: a trigger refuses updates and deletes,
-- except the deletes of a tenant's rows when the tenant itself goes.

-- +goose Up
CREATE TABLE activity_log (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL,
    actor     text NOT NULL CHECK (actor IN ('sync', 'api')),
    action    text NOT NULL CHECK (action <> ''),
    target    text NOT NULL CHECK (target <> ''),
    before    jsonb,
    after     jsonb,
    run_id    uuid,
    PRIMARY KEY (tenant_id, id)
);

-- Newest first, and by target.
CREATE INDEX activity_log_at ON activity_log (tenant_id, at DESC, id DESC);
CREATE INDEX activity_log_target ON activity_log (tenant_id, target, at DESC, id DESC);

-- +goose StatementBegin
CREATE FUNCTION activity_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A delete cascading from tenants runs inside the foreign key's own
    -- trigger (depth 2); any other update or delete is refused.
    IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'activity_log is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER activity_log_append_only BEFORE UPDATE OR DELETE ON activity_log
    FOR EACH ROW EXECUTE FUNCTION activity_log_append_only();

-- The sync entries: a tenant's succeeded runs newest first, and a run's
-- plan rows by target.
CREATE INDEX sync_runs_applied ON sync_runs (tenant_id, finished_at DESC, seq DESC) WHERE status = 'succeeded';
CREATE INDEX sync_plan_items_target ON sync_plan_items (tenant_id, run_id, entra_id, seq);

-- +goose Down
DROP INDEX sync_plan_items_target;
DROP INDEX sync_runs_applied;
DROP TABLE activity_log;
DROP FUNCTION activity_log_append_only();
