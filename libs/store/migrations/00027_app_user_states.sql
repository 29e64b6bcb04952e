-- app_user_states: how many of a tenant's app users are in each state
-- the seat rules tell apart (enabled, license, license disabled by an
-- admin), kept by the writes themselves.
--
-- Every plan starts from these counts (plan.SteadySeat, the guard's
-- totals). Counted with a GROUP BY over the tenant's app users, they
-- cost every delta round in proportion to the tenant, not to what
-- changed: 34-59 ms of a 100k-user tenant's delta finalization, and ten
-- times that at 1M. A statement trigger on app_users adds what each
-- statement inserted or updated to the counts and takes away what it
-- updated or deleted, from its transition tables: work in proportion to
-- the rows written, in the same transaction. Every writer of a tenant's
-- app users holds the tenant's row lock, so the counts of one tenant are
-- never updated by two transactions at once.

-- +goose Up
CREATE TABLE app_user_states (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    enabled   boolean NOT NULL,
    license   text NOT NULL,
    sticky    boolean NOT NULL,
    users     bigint NOT NULL CHECK (users >= 0),
    PRIMARY KEY (tenant_id, enabled, license, sticky)
);

-- +goose StatementBegin
CREATE FUNCTION count_app_user_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO app_user_states AS s (tenant_id, enabled, license, sticky, users)
        SELECT n.tenant_id, n.enabled, n.license, n.license_disabled_at IS NOT NULL, count(*)
        FROM new_users n
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, enabled, license, sticky) DO UPDATE SET users = s.users + EXCLUDED.users;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE app_user_states s
        SET users = s.users - o.users
        FROM (SELECT o.tenant_id, o.enabled, o.license, o.license_disabled_at IS NOT NULL AS sticky, count(*) AS users
              FROM old_users o
              GROUP BY 1, 2, 3, 4) o
        WHERE s.tenant_id = o.tenant_id AND s.enabled = o.enabled AND s.license = o.license AND s.sticky = o.sticky;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER app_users_count_inserted AFTER INSERT ON app_users
    REFERENCING NEW TABLE AS new_users FOR EACH STATEMENT EXECUTE FUNCTION count_app_user_states();
CREATE TRIGGER app_users_count_updated AFTER UPDATE ON app_users
    REFERENCING OLD TABLE AS old_users NEW TABLE AS new_users FOR EACH STATEMENT EXECUTE FUNCTION count_app_user_states();
CREATE TRIGGER app_users_count_deleted AFTER DELETE ON app_users
    REFERENCING OLD TABLE AS old_users FOR EACH STATEMENT EXECUTE FUNCTION count_app_user_states();

INSERT INTO app_user_states (tenant_id, enabled, license, sticky, users)
SELECT tenant_id, enabled, license, license_disabled_at IS NOT NULL, count(*)
FROM app_users
GROUP BY 1, 2, 3, 4;

-- +goose Down
DROP TRIGGER app_users_count_deleted ON app_users;
DROP TRIGGER app_users_count_updated ON app_users;
DROP TRIGGER app_users_count_inserted ON app_users;
DROP FUNCTION count_app_user_states();
DROP TABLE app_user_states;
