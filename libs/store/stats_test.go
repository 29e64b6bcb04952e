package store_test

import (
	"context"
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
	for _, table := range []string{"dir_users", "dir_groups", "dir_members", "dir_devices", "app_users"} {
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
	// Tables the pages did not change (no devices; app users come from
	// the plan, inside the finalization) are left to autovacuum.
	for _, table := range []string{"dir_devices", "app_users"} {
		if analyzed(table) {
			t.Errorf("%s analyzed, though the run's pages left it unchanged", table)
		}
	}
	rs, err := st.GetRun(ctx, tn.ID, r.ID)
	must(t, err)
	if rs.Status != store.StatusSucceeded {
		t.Fatalf("run %s, want succeeded", rs.Status)
	}
}
