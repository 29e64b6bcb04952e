-- The mirror's tables and a plan's items take hundreds of thousands of
-- rows in one run (a 100k-user tenant's first full sync: 310k mirror
-- rows, 436k plan items), and a foreign key checks each row on its own:
-- one lookup of the parent row and a FOR KEY SHARE lock on it, 2-3 µs a
-- row when the machine is idle, some 15% of a members page's upsert and
-- 30% of the COPY of a plan's items when it is not.
--
-- Those checks prove nothing the writes do not already prove. Every
-- statement that inserts mirror rows runs in the transaction of a page
-- (whose sync_run_pages row references its run, and the run its tenant)
-- or of a run's finalization (which holds its run row FOR UPDATE); plan
-- items are written only by the finalization. Neither runs nor tenants
-- are ever deleted by entrasync, and the row lock a page's or a
-- finalization's run row holds keeps a deletion by hand waiting until
-- they commit.
--
-- So these tables lose their row-by-row foreign keys and keep what the
-- keys did on delete: a statement trigger removes the rows of deleted
-- tenants (mirror) and runs (plan items) in one set-based delete.

-- +goose Up
ALTER TABLE dir_users DROP CONSTRAINT dir_users_tenant_id_fkey;
ALTER TABLE dir_groups DROP CONSTRAINT dir_groups_tenant_id_fkey;
ALTER TABLE dir_members DROP CONSTRAINT dir_members_tenant_id_fkey;
ALTER TABLE dir_devices DROP CONSTRAINT dir_devices_tenant_id_fkey;
ALTER TABLE dir_edge_changes DROP CONSTRAINT dir_removed_edges_tenant_id_fkey;
ALTER TABLE dir_member_removals DROP CONSTRAINT dir_member_removals_tenant_id_fkey;
ALTER TABLE sync_plan_items DROP CONSTRAINT sync_plan_items_tenant_id_run_id_fkey;

-- +goose StatementBegin
CREATE FUNCTION drop_deleted_tenants_mirror() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM dir_members x USING gone g WHERE x.tenant_id = g.id;
    DELETE FROM dir_users x USING gone g WHERE x.tenant_id = g.id;
    DELETE FROM dir_groups x USING gone g WHERE x.tenant_id = g.id;
    DELETE FROM dir_devices x USING gone g WHERE x.tenant_id = g.id;
    DELETE FROM dir_edge_changes x USING gone g WHERE x.tenant_id = g.id;
    DELETE FROM dir_member_removals x USING gone g WHERE x.tenant_id = g.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER tenants_drop_mirror AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION drop_deleted_tenants_mirror();

-- +goose StatementBegin
CREATE FUNCTION drop_deleted_runs_plan_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sync_plan_items x USING gone g WHERE x.tenant_id = g.tenant_id AND x.run_id = g.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER sync_runs_drop_plan_items AFTER DELETE ON sync_runs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION drop_deleted_runs_plan_items();

-- +goose Down
DROP TRIGGER sync_runs_drop_plan_items ON sync_runs;
DROP FUNCTION drop_deleted_runs_plan_items();
DROP TRIGGER tenants_drop_mirror ON tenants;
DROP FUNCTION drop_deleted_tenants_mirror();
DELETE FROM sync_plan_items x WHERE NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.tenant_id = x.tenant_id AND r.id = x.run_id);
ALTER TABLE sync_plan_items ADD CONSTRAINT sync_plan_items_tenant_id_run_id_fkey
    FOREIGN KEY (tenant_id, run_id) REFERENCES sync_runs (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE dir_member_removals ADD CONSTRAINT dir_member_removals_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE dir_edge_changes ADD CONSTRAINT dir_removed_edges_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE dir_devices ADD CONSTRAINT dir_devices_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE dir_members ADD CONSTRAINT dir_members_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE dir_groups ADD CONSTRAINT dir_groups_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE dir_users ADD CONSTRAINT dir_users_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
