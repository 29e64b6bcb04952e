package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// tenantRows counts a tenant's rows in every table with a tenant_id.
func tenantRows(t *testing.T, db *pgxpool.Pool, tenant string) map[string]int {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT table_name::text FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1`)
	must(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	out := map[string]int{}
	for _, tbl := range tables {
		var n int
		must(t, db.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tbl}.Sanitize()+` WHERE tenant_id = $1`,
			tenant).Scan(&n))
		out[tbl] = n
	}
	return out
}

// The mirror's tables and the plan items have no foreign keys (migration
// 00026): what their keys did on delete, triggers do. Deleting a tenant
// by hand leaves none of its rows in any table and every row of the
// other tenant; deleting a run removes its plan items only.
func TestDeletingATenantOrRunLeavesNoRowsBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	db, err := pgxpool.New(ctx, url)
	must(t, err)
	t.Cleanup(db.Close)

	var syncers []*syncer
	for range 2 {
		s := &syncer{t: t, st: st, tenant: newTenant(t, st, 10).ID, at: newClock().Now()}
		users := people(3)
		s.runWithGroups(users, map[string][]store.DirMember{
			gBottom: {usr(users[0].ID), usr(users[1].ID)}, gMid: {grp(gBottom)}, gTop: {grp(gMid), usr(users[2].ID)},
		})
		syncers = append(syncers, s)
	}
	gone, kept := syncers[0], syncers[1]
	keptBefore := tenantRows(t, db, kept.tenant)
	for _, tbl := range []string{"dir_users", "dir_groups", "dir_members", "sync_plan_items", "app_users",
		"app_group_members"} {
		if keptBefore[tbl] == 0 {
			t.Fatalf("no rows in %s to delete: the sync wrote nothing there", tbl)
		}
	}

	if _, err := db.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, gone.tenant); err != nil {
		t.Fatalf("delete a tenant: %v", err)
	}
	for tbl, n := range tenantRows(t, db, gone.tenant) {
		if n != 0 {
			t.Errorf("%s keeps %d rows of the deleted tenant", tbl, n)
		}
	}
	for tbl, n := range tenantRows(t, db, kept.tenant) {
		if n != keptBefore[tbl] {
			t.Errorf("%s: the other tenant has %d rows, had %d", tbl, n, keptBefore[tbl])
		}
	}

	// A second run of the kept tenant, which lost two of its users,
	// plans their removal; deleting its first run removes that run's
	// items and no other.
	second := kept.runWithGroups(people(1), nil)
	var first string
	must(t, db.QueryRow(ctx, `SELECT id::text FROM sync_runs WHERE tenant_id = $1 AND seq = 1`, kept.tenant).Scan(&first))
	var secondItems int
	must(t, db.QueryRow(ctx, `SELECT count(*) FROM sync_plan_items WHERE tenant_id = $1 AND run_id = $2`,
		kept.tenant, second.ID).Scan(&secondItems))
	if secondItems == 0 {
		t.Fatal("the second run planned nothing: nothing to keep")
	}
	if _, err := db.Exec(ctx, `DELETE FROM sync_runs WHERE tenant_id = $1 AND id = $2`, kept.tenant, first); err != nil {
		t.Fatalf("delete a run: %v", err)
	}
	var firstLeft, secondLeft int
	must(t, db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE run_id = $2), count(*) FILTER (WHERE run_id = $3)
		FROM sync_plan_items WHERE tenant_id = $1`, kept.tenant, first, second.ID).Scan(&firstLeft, &secondLeft))
	if firstLeft != 0 || secondLeft != secondItems {
		t.Fatalf("after deleting the first run: its items %d (want 0), the second's %d (want %d)",
			firstLeft, secondLeft, secondItems)
	}
}
