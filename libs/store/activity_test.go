package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// activitySyncer is a syncer whose store clock and sync times are the
// same clock, moved by hand, so that the log's two sources interleave.
func activitySyncer(t *testing.T, seats int) (*syncer, *fakeClock, string) {
	clock := newClock()
	st, url := storetest.NewWithURL(t, store.WithClock(clock.Now))
	s := &syncer{t: t, st: st, tenant: newTenant(t, st, seats).ID}
	return s, clock, url
}

// allActivity pages through the log with limit per page.
func allActivity(t *testing.T, st *store.Store, tenant string, f store.ActivityFilter, limit int) []store.Activity {
	t.Helper()
	var out []store.Activity
	var cur *store.ActivityCursor
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the activity log does not end")
		}
		page, next, err := st.ListActivity(context.Background(), tenant, f, cur, limit)
		must(t, err)
		if len(page) > limit {
			t.Fatalf("a page of %d entries, limit %d", len(page), limit)
		}
		out = append(out, page...)
		if next == nil {
			return out
		}
		// The cursor goes through the API as a string.
		c, err := store.DecodeActivityCursor(next.Encode())
		must(t, err)
		cur = &c
	}
}

func TestActivityLogMergesSyncsAndAdminActions(t *testing.T) {
	t.Parallel()
	s, clock, _ := activitySyncer(t, 2)
	ctx := context.Background()
	users := people(3)
	step := func() time.Time { clock.Add(time.Minute); s.at = clock.Now(); return s.at }

	step()
	first := s.run(users...) // 3 users created, 2 licensed
	step()
	s.settings(func(set *plan.Settings) { set.Seats = 3 })
	step()
	second := s.run(users...) // the third gets a seat
	step()
	disabled := store.LicenseDisabled
	_, err := s.st.UpdateAppUser(ctx, s.tenant, users[0].ID, store.UserPatch{License: &disabled})
	must(t, err)
	step()
	manual, created, err := s.st.QueueManualRun(ctx, s.tenant)
	if err != nil || !created {
		t.Fatalf("QueueManualRun = %v, %v", created, err)
	}

	want := []struct{ actor, action, target string }{
		{"api", store.ActivityTriggerSync, s.tenant},
		{"api", store.ActivityUpdateUser, users[0].ID},
		{"sync", string(plan.AssignLicense), users[2].ID},
		{"api", store.ActivityUpdateSettings, s.tenant},
	}
	for limit := 1; limit <= 4; limit++ {
		all := allActivity(t, s.st, s.tenant, store.ActivityFilter{}, limit)
		if len(all) < len(want)+3 {
			t.Fatalf("limit %d: %d entries, want the %d newest plus the first run's", limit, len(all), len(want))
		}
		for i, w := range want {
			if e := all[i]; e.Actor != w.actor || e.Action != w.action || e.Target != w.target {
				t.Errorf("limit %d: entry %d is %s %s %s, want %s %s %s", limit, i, e.Actor, e.Action, e.Target, w.actor, w.action, w.target)
			}
		}
		ids := map[string]bool{}
		for i, e := range all {
			if ids[e.ID] {
				t.Fatalf("limit %d: entry %s twice", limit, e.ID)
			}
			ids[e.ID] = true
			if i > 0 && e.At.After(all[i-1].At) {
				t.Fatalf("limit %d: entry %d (%s) is newer than the one before it", limit, i, e.At)
			}
		}
		// The first run's plan: three users created, two licensed.
		var firstRun []string
		for _, e := range all {
			if e.RunID == first.ID {
				firstRun = append(firstRun, e.Action)
			}
		}
		slices.Sort(firstRun)
		if fmt.Sprint(firstRun) != "[assignLicense assignLicense createUser createUser createUser]" {
			t.Errorf("limit %d: the first run's entries are %v", limit, firstRun)
		}
	}

	all := allActivity(t, s.st, s.tenant, store.ActivityFilter{}, 100)
	if e := all[0]; e.RunID != manual.ID {
		t.Errorf("the trigger's entry names run %q, want %s", e.RunID, manual.ID)
	}
	if e := all[1]; !sameJSON(e.Before, `{"license":"assigned"}`) || !sameJSON(e.After, `{"license":"disabled"}`) {
		t.Errorf("the license edit logged %s -> %s", e.Before, e.After)
	}
	if e := all[2]; e.RunID != second.ID || e.Reason == "" || e.TargetName == "" {
		t.Errorf("the second run's entry is %+v", e)
	}
	if e := all[3]; !sameJSON(e.Before, `{"seats":2}`) || !sameJSON(e.After, `{"seats":3}`) {
		t.Errorf("the settings change logged %s -> %s", e.Before, e.After)
	}

	// Filters: by target, by action, since a time.
	mine := allActivity(t, s.st, s.tenant, store.ActivityFilter{Target: users[0].ID}, 2)
	var actions []string
	for _, e := range mine {
		if e.Target != users[0].ID {
			t.Fatalf("target filter let %+v through", e)
		}
		actions = append(actions, e.Action)
	}
	if fmt.Sprint(actions) != "[updateUser assignLicense createUser]" {
		t.Errorf("user 1's entries are %v", actions)
	}
	licenses := allActivity(t, s.st, s.tenant, store.ActivityFilter{Action: string(plan.AssignLicense)}, 2)
	if len(licenses) != 3 {
		t.Errorf("%d assignLicense entries, want 3", len(licenses))
	}
	recent := allActivity(t, s.st, s.tenant, store.ActivityFilter{Since: second.FinishedAt.Add(-time.Second)}, 3)
	if len(recent) != 3 {
		t.Errorf("%d entries since the second run, want 3: %+v", len(recent), recent)
	}

	// A cursor that is not one the store handed out is refused.
	if _, err := store.DecodeActivityCursor(`{"a":{}}`); err == nil {
		t.Error("a made-up cursor was accepted")
	}
}

// TestActivityLogIsAppendOnly: the database refuses to change or delete
// an entry, and deleting the tenant takes its entries with it.
func TestActivityLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	s, _, url := activitySyncer(t, 2)
	s.settings(func(set *plan.Settings) { set.Seats = 5 })
	ctx := context.Background()
	db, err := pgxpool.New(ctx, url)
	must(t, err)
	t.Cleanup(db.Close)
	for _, q := range []string{
		`UPDATE activity_log SET action = 'forged' WHERE tenant_id = $1`,
		`DELETE FROM activity_log WHERE tenant_id = $1`,
	} {
		if _, err := db.Exec(ctx, q, s.tenant); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
	var n int
	must(t, db.QueryRow(ctx, `SELECT count(*) FROM activity_log WHERE tenant_id = $1`, s.tenant).Scan(&n))
	if n != 1 {
		t.Fatalf("%d entries, want the settings change's", n)
	}
	if _, err := db.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, s.tenant); err != nil {
		t.Fatalf("deleting the tenant: %v", err)
	}
	must(t, db.QueryRow(ctx, `SELECT count(*) FROM activity_log WHERE tenant_id = $1`, s.tenant).Scan(&n))
	if n != 0 {
		t.Fatalf("%d entries left after the tenant was deleted", n)
	}
}

// sameJSON says whether raw holds the same JSON value as want.
func sameJSON(raw []byte, want string) bool {
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}
