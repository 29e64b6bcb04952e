package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// A tenant's first full sync fills the mirror; its finalization must not
// plan on statistics from before (see stats.go). Autovacuum is off for
// the test's tables, so only finalization can have analyzed them.
func TestFinalizeAnalyzesTablesTheRunLeftStale(t *testing.T) {
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, table := range []string{"dir_users", "dir_groups", "dir_members", "dir_devices", "app_users",
		"app_group_members", "plan_work_users", "plan_work_members"} {
		_, err := conn.Exec(ctx, "ALTER TABLE "+table+" SET (autovacuum_enabled = false)")
		must(t, err)
	}
	analyzed := func(table string) bool {
		var at *time.Time
		must(t, conn.QueryRow(ctx, "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&at))
		return at != nil
	}

	tn := newTenant(t, st, 3000)
	dir := newBenchTenant(2000, 20, 40)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := dir.fetchedFullRun(ctx, t, st, tn.ID, at)
	// The statistics collector hears of a session's writes up to a few
	// seconds after they commit.
	devenv.WaitFor(t, 30*time.Second, "the run's writes counted by the statistics collector", func() bool {
		var users, members int64
		must(t, conn.QueryRow(ctx, `SELECT
			(SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'dir_users'),
			(SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'dir_members')`).Scan(&users, &members))
		return users >= 2000 && members >= 2000
	})
	for _, table := range []string{"dir_users", "dir_members"} {
		if analyzed(table) {
			t.Fatalf("%s analyzed before the run was finalized", table)
		}
	}

	done, err := st.TryFinalize(ctx, tn.ID, r.ID, at)
	if err != nil || !done {
		t.Fatalf("finalize: done %v, err %v", done, err)
	}
	for _, table := range []string{"dir_users", "dir_members"} {
		if !analyzed(table) {
			t.Errorf("%s: 2,000 new rows, not analyzed before finalizing", table)
		}
	}
	// Tables neither the pages nor the plan changed (no devices) are
	// left to autovacuum.
	if analyzed("dir_devices") {
		t.Errorf("dir_devices analyzed, though the run left it unchanged")
	}
	// The plan wrote 2,000 app users and their memberships: analyzed once
	// it was applied.
	for _, table := range []string{"app_users", "app_group_members"} {
		if !analyzed(table) {
			t.Errorf("%s: the plan wrote 2,000 rows, not analyzed after applying it", table)
		}
	}
	// The tenant's first plan recomputed everything: its working tables
	// are vacuumed of the rows it deleted.
	for _, table := range []string{"plan_work_users", "plan_work_members"} {
		var at *time.Time
		must(t, conn.QueryRow(ctx, "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&at))
		if at == nil {
			t.Errorf("%s not vacuumed after a plan that filled it with the whole tenant", table)
		}
	}
	rs, err := st.GetRun(ctx, tn.ID, r.ID)
	must(t, err)
	if rs.Status != store.StatusSucceeded {
		t.Fatalf("run %s, want succeeded", rs.Status)
	}

	// A small tenant's run beside a large tenant's load does not wait for
	// an analyze of the tables the large one filled; the large one's
	// finalization analyzes them.
	lastAnalyze := func(table string) time.Time {
		var at time.Time
		must(t, conn.QueryRow(ctx, "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&at))
		return at
	}
	before := lastAnalyze("dir_users")
	tenant := func(n int, users int) store.Tenant {
		tn, err := st.CreateTenant(ctx, store.NewTenant{Name: fmt.Sprint("Tenant ", n), EntraTenantID: uID(800_000 + n),
			ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret value", Seats: users})
		must(t, err)
		return tn
	}
	large, small := tenant(1, 3000), tenant(2, 20)
	largeRun := newBenchTenant(3000, 10, 40).fetchedFullRun(ctx, t, st, large.ID, at)
	smallRun := newBenchTenant(20, 1, 1).fetchedFullRun(ctx, t, st, small.ID, at)
	devenv.WaitFor(t, 30*time.Second, "both runs' writes counted by the statistics collector", func() bool {
		var users int64
		must(t, conn.QueryRow(ctx, `SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'dir_users'`).Scan(&users))
		return users >= 3020
	})
	if done, err := st.TryFinalize(ctx, small.ID, smallRun.ID, at); err != nil || !done {
		t.Fatalf("finalize the small run: done %v, err %v", done, err)
	}
	if got := lastAnalyze("dir_users"); !got.Equal(before) {
		t.Errorf("the 20-user run analyzed dir_users (at %s) for the 3,000 users of another tenant", got)
	}
	if done, err := st.TryFinalize(ctx, large.ID, largeRun.ID, at); err != nil || !done {
		t.Fatalf("finalize the large run: done %v, err %v", done, err)
	}
	if got := lastAnalyze("dir_users"); !got.After(before) {
		t.Errorf("the 3,000-user run did not analyze dir_users (last analyzed %s)", got)
	}
}
