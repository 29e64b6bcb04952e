package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// The counts of app users by seat state (app_user_states, which every
// plan starts from) follow every kind of write to app_users: a first
// plan's inserts, an admin's edit, a delta round's updates and deletes.
func TestAppUserStatesFollowEveryWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	check := func(when string) {
		t.Helper()
		want := w.rows(`SELECT enabled, ' ', license, ' sticky=', license_disabled_at IS NOT NULL, ' ', count(*)
			FROM app_users WHERE tenant_id = $1 GROUP BY 1, 3, 5 ORDER BY 1, 3, 5`)
		got := w.rows(`SELECT enabled, ' ', license, ' sticky=', sticky, ' ', users
			FROM app_user_states WHERE tenant_id = $1 AND users > 0 ORDER BY 1, 3, 5`)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("%s: counted states %q, app users %q", when, got, want)
		}
	}

	disabled := dUser(5, "Eve")
	disabled.AccountEnabled = false
	users := []store.DirUser{dUser(1, "Ann"), dUser(2, "Bob"), dUser(3, "Cy"), dUser(4, "Dee"), disabled, dUser(6, "Fay")}
	w.full(users, nil, nil, [2]string{"users-link", "groups-link"})
	check("after the first plan")

	license := plan.LicenseDisabled
	_, err := w.st.UpdateAppUser(ctx, w.tenant, uID(2), store.UserPatch{License: &license})
	must(t, err)
	check("after an admin disabled a license")

	off := dUser(3, "Cy")
	off.AccountEnabled = false
	on := dUser(5, "Eve")
	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), []store.DirUser{off, on, dUser(7, "Gus")},
		[]store.DirRemoved{{ID: uID(4)}, {ID: uID(6), Restorable: true}}, w.at))
	if r := w.finish(d, 1, [2]string{"users-link-2", "groups-link"}); r.Status != store.StatusSucceeded {
		t.Fatalf("delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	check("after a delta round disabled, enabled, added and removed users")
}
