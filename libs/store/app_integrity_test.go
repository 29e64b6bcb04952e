package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/entrasync/entrasync/libs/store"
)

// An app membership names a user and a group of its tenant's app, checked
// once per statement (migration 00028): every statement that would break
// that fails with a foreign key violation and changes nothing.
func TestAppMembershipsNeedTheirUserAndGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob")}, []store.DirGroup{dGroup(1, "Staff")},
		map[string][]store.DirMember{gID(1): {memberUser(1)}}, [2]string{})
	memberships := func() []string {
		return w.rows(`SELECT group_id, '>', user_id FROM app_group_members WHERE tenant_id = $1 ORDER BY 1, 3`)
	}
	wantRows(t, "app memberships after the first plan", memberships(), gID(1)+">"+uID(1))
	other := newTenant(t, w.st, 10).ID

	refused := func(what, sql string, args ...any) {
		t.Helper()
		_, err := w.db.Exec(ctx, sql, args...)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23503" {
			t.Errorf("%s: %v, want a foreign key violation", what, err)
		}
	}
	refused("a membership of a user the app does not have",
		`INSERT INTO app_group_members (tenant_id, group_id, user_id) VALUES ($1, $2, $3)`, w.tenant, gID(1), uID(9))
	refused("a membership in a group the app does not have",
		`INSERT INTO app_group_members (tenant_id, group_id, user_id) VALUES ($1, $2, $3)`, w.tenant, gID(7), uID(2))
	refused("a membership naming another tenant's user and group",
		`INSERT INTO app_group_members (tenant_id, group_id, user_id) VALUES ($1, $2, $3)`, other, gID(1), uID(1))
	refused("a valid membership beside an invalid one, in one statement",
		`INSERT INTO app_group_members (tenant_id, group_id, user_id) VALUES ($1, $2, $3), ($1, $2, $4)`,
		w.tenant, gID(1), uID(2), uID(9))
	refused("moving a membership to a user the app does not have",
		`UPDATE app_group_members SET user_id = $3 WHERE tenant_id = $1 AND group_id = $2`, w.tenant, gID(1), uID(9))
	refused("deleting a user who is still a member",
		`DELETE FROM app_users WHERE tenant_id = $1 AND entra_id = $2`, w.tenant, uID(1))
	refused("deleting a group that still has members",
		`DELETE FROM app_groups WHERE tenant_id = $1 AND entra_id = $2`, w.tenant, gID(1))
	refused("changing a member's id",
		`UPDATE app_users SET entra_id = 'someone-else' WHERE tenant_id = $1 AND entra_id = $2`, w.tenant, uID(1))
	refused("changing a group's id",
		`UPDATE app_groups SET entra_id = 'another-group' WHERE tenant_id = $1 AND entra_id = $2`, w.tenant, gID(1))
	wantRows(t, "app memberships after the refused statements", memberships(), gID(1)+">"+uID(1))

	// In the order a plan applies them, the same changes pass.
	tx, err := w.db.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	for _, sql := range []string{
		`INSERT INTO app_group_members (tenant_id, group_id, user_id) VALUES ($1, '` + gID(1) + `', '` + uID(2) + `')`,
		`DELETE FROM app_group_members WHERE tenant_id = $1 AND user_id = '` + uID(1) + `'`,
		`DELETE FROM app_users WHERE tenant_id = $1 AND entra_id = '` + uID(1) + `'`,
		`DELETE FROM app_group_members WHERE tenant_id = $1`,
		`DELETE FROM app_groups WHERE tenant_id = $1`,
	} {
		if _, err := tx.Exec(ctx, sql, w.tenant); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}
