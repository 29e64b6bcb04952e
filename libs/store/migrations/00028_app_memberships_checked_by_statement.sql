-- app_group_members checks that each membership's user and group exist
-- once per statement instead of once per row.
--
-- A tenant's first plan inserts a membership for every edge the app
-- keeps (200k+ at 100k users), and its three foreign keys checked each
-- row on its own: the tenant's at the end of the insert, the user's and
-- the group's at commit, one index lookup and row lock each. That was
-- 2.8 s of a 100k-user tenant's 12.9 s finalization.
--
-- The same rules, set-based:
--   * a statement that inserts or updates memberships fails if any of
--     them names a user or group its tenant's app does not have, checked
--     tenant by tenant (an anti-join against that tenant's rows only);
--   * a statement that deletes app users or groups fails if a membership
--     still names one of them;
--   * the keys of app users and groups never change (Entra ids are
--     immutable): an UPDATE that sets them fails;
--   * deleting a tenant deletes its memberships in one statement. Its
--     users and groups go by their foreign keys' cascade, whose deletes
--     Postgres checks after the tenants' statement trigger has run
--     (TestDeletingATenantOrRunLeavesNoRowsBehind fails otherwise).
-- The checks run when each statement ends, not at commit: the plan
-- removes memberships before users and groups, and creates users and
-- groups before their memberships (plan.Actions), as any writer must.

-- +goose Up
ALTER TABLE app_group_members
    DROP CONSTRAINT app_group_members_tenant_id_fkey,
    DROP CONSTRAINT app_group_members_tenant_id_group_id_fkey,
    DROP CONSTRAINT app_group_members_tenant_id_user_id_fkey;

-- +goose StatementBegin
CREATE FUNCTION check_app_memberships_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid;
    bad    record;
BEGIN
    FOR tenant IN SELECT DISTINCT a.tenant_id FROM added a LOOP
        SELECT a.group_id, a.user_id INTO bad
        FROM added a
        WHERE a.tenant_id = tenant
          AND NOT EXISTS (SELECT 1 FROM app_users u WHERE u.tenant_id = tenant AND u.entra_id = a.user_id)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'app membership of user % in group % of tenant %: the app has no such user',
                bad.user_id, bad.group_id, tenant USING ERRCODE = 'foreign_key_violation';
        END IF;
        SELECT a.group_id, a.user_id INTO bad
        FROM added a
        WHERE a.tenant_id = tenant
          AND NOT EXISTS (SELECT 1 FROM app_groups g WHERE g.tenant_id = tenant AND g.entra_id = a.group_id)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'app membership of user % in group % of tenant %: the app has no such group',
                bad.user_id, bad.group_id, tenant USING ERRCODE = 'foreign_key_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER app_group_members_check_inserted AFTER INSERT ON app_group_members
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION check_app_memberships_added();
CREATE TRIGGER app_group_members_check_updated AFTER UPDATE ON app_group_members
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION check_app_memberships_added();

-- +goose StatementBegin
CREATE FUNCTION check_app_users_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT m.tenant_id, m.group_id, m.user_id INTO bad
    FROM gone g
    JOIN app_group_members m ON m.tenant_id = g.tenant_id AND m.user_id = g.entra_id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'app user % of tenant % deleted while still a member of group %',
            bad.user_id, bad.tenant_id, bad.group_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION check_app_groups_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT m.tenant_id, m.group_id, m.user_id INTO bad
    FROM gone g
    JOIN app_group_members m ON m.tenant_id = g.tenant_id AND m.group_id = g.entra_id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'app group % of tenant % deleted while user % is still its member',
            bad.group_id, bad.tenant_id, bad.user_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER app_users_check_deleted AFTER DELETE ON app_users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION check_app_users_deleted();
CREATE TRIGGER app_groups_check_deleted AFTER DELETE ON app_groups
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION check_app_groups_deleted();

-- +goose StatementBegin
CREATE FUNCTION refuse_app_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.entra_id) IS DISTINCT FROM (OLD.tenant_id, OLD.entra_id) THEN
        RAISE EXCEPTION '% %: entra_id and tenant_id never change', TG_TABLE_NAME, OLD.entra_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- Fires only for an UPDATE that sets either column, which entrasync's
-- statements never do.
CREATE TRIGGER app_users_keys_fixed BEFORE UPDATE OF tenant_id, entra_id ON app_users
    FOR EACH ROW EXECUTE FUNCTION refuse_app_key_change();
CREATE TRIGGER app_groups_keys_fixed BEFORE UPDATE OF tenant_id, entra_id ON app_groups
    FOR EACH ROW EXECUTE FUNCTION refuse_app_key_change();

-- +goose StatementBegin
CREATE FUNCTION drop_deleted_tenants_app_memberships() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM app_group_members x USING gone g WHERE x.tenant_id = g.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER tenants_drop_app_memberships AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION drop_deleted_tenants_app_memberships();

-- +goose Down
DROP TRIGGER tenants_drop_app_memberships ON tenants;
DROP FUNCTION drop_deleted_tenants_app_memberships();
DROP TRIGGER app_groups_keys_fixed ON app_groups;
DROP TRIGGER app_users_keys_fixed ON app_users;
DROP FUNCTION refuse_app_key_change();
DROP TRIGGER app_groups_check_deleted ON app_groups;
DROP TRIGGER app_users_check_deleted ON app_users;
DROP FUNCTION check_app_groups_deleted();
DROP FUNCTION check_app_users_deleted();
DROP TRIGGER app_group_members_check_updated ON app_group_members;
DROP TRIGGER app_group_members_check_inserted ON app_group_members;
DROP FUNCTION check_app_memberships_added();
ALTER TABLE app_group_members
    ADD CONSTRAINT app_group_members_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT app_group_members_tenant_id_group_id_fkey FOREIGN KEY (tenant_id, group_id)
        REFERENCES app_groups (tenant_id, entra_id) DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT app_group_members_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES app_users (tenant_id, entra_id) DEFERRABLE INITIALLY DEFERRED;
