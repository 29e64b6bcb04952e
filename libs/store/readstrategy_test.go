package store_test

import (
	"context"
	"testing"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// TestReadStrategyWeighsTheMirror: the facts of plan.ReadStrategy come
// from the mirror the last applied run left: users and groups not
// deleted, a member page per started 999 direct edges of each group (one
// for an empty list), and each scope group's nested users through a
// cycle; before any run the sizes are unknown and the read is full.
func TestReadStrategyWeighsTheMirror(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	set := plan.DefaultSettings()
	set.Scope.Groups = []string{gID(1), gID(9)} // gID(9): not in Entra ID
	set.Groups = plan.GroupKinds{Include: []string{}}
	_, _, err := w.st.UpdateSettings(ctx, w.tenant, set)
	must(t, err)

	c, err := w.st.ReadStrategy(ctx, w.tenant)
	must(t, err)
	if c.Strategy != plan.ReadFull || c.TransitiveRU != 0 {
		t.Fatalf("before the first run: %+v, want full (sizes unknown before a whole read)", c)
	}

	var users []store.DirUser
	for n := 1; n <= 6; n++ {
		users = append(users, dUser(n, "u"))
	}
	var big []store.DirMember
	for n := 1000; n < 2000; n++ {
		big = append(big, memberUser(n))
	}
	groupMember := func(n int) store.DirMember { return store.DirMember{ID: gID(n), Type: store.MemberGroup} }
	w.full(users, []store.DirGroup{dGroup(1, "scope"), dGroup(2, "nested"), dGroup(3, "other"), dGroup(4, "big"), dGroup(5, "empty")},
		map[string][]store.DirMember{
			gID(1): {memberUser(1), groupMember(2)},
			// 1,004 edges (two pages), one a cycle back to the scope group.
			gID(2): append([]store.DirMember{memberUser(2), memberUser(3), memberUser(1), groupMember(1)}, big...),
			gID(3): {memberUser(4), memberUser(5)},
		}, [2]string{})

	c, err = w.st.ReadStrategy(ctx, w.tenant)
	must(t, err)
	// Full: 2 links + 1 users page + 1 groups page + 2·(1+2+1+1+1) member
	// pages; transitive: 4·2 for gID(1)'s 1,003 nested users, 4·1 for
	// gID(9)'s none.
	want := plan.ReadChoice{Strategy: plan.ReadTransitive, FullRU: 2 + 1 + 1 + 2*6, TransitiveRU: 12}
	if c.Strategy != want.Strategy || c.FullRU != want.FullRU || c.TransitiveRU != want.TransitiveRU {
		t.Fatalf("after a full run: %+v, want %+v", c, want)
	}

	// An admin who forces a full run gets the whole directory listed.
	forced, created, err := w.st.QueueManualRunOf(ctx, w.tenant, store.KindFull)
	must(t, err)
	if !created || forced.Kind != store.KindFull || forced.ReadStrategy != store.ReadFull {
		t.Fatalf("forced full run: created %v, %s, read %s; want a new full run listing everything", created, forced.Kind, forced.ReadStrategy)
	}

	// Full runs created now read transitively, and every run is full.
	for _, kind := range []string{store.KindAuto, store.KindFull} {
		r, err := w.st.CreateRun(ctx, store.NewRun{TenantID: w.tenant, Kind: kind, Trigger: store.TriggerManual})
		must(t, err)
		if r.Kind != store.KindFull || r.ReadStrategy != store.ReadTransitive {
			t.Fatalf("run created %s: %s, read %s; want a full run read transitively", kind, r.Kind, r.ReadStrategy)
		}
	}

	// Importing a group needs every group's direct edges: full.
	set.Groups.Security = true
	_, _, err = w.st.UpdateSettings(ctx, w.tenant, set)
	must(t, err)
	c, err = w.st.ReadStrategy(ctx, w.tenant)
	must(t, err)
	if c.Strategy != plan.ReadFull || c.FullRU != want.FullRU {
		t.Fatalf("importing security groups: %+v, want full", c)
	}
	r, err := w.st.CreateRun(ctx, store.NewRun{TenantID: w.tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	if r.ReadStrategy != store.ReadFull {
		t.Fatalf("run created while importing groups: read %s, want full", r.ReadStrategy)
	}
}

// TestScopedListingTombstonesNobodyAndScopesByItsLists: a run whose
// pages are the scope users and the scope groups' transitive lists (no
// groups listing) is a scoped listing. Its finalization tombstones none
// of the users it did not read; the app holds the users its lists name
// for the groups still in the scope setting, whatever the mirror's
// (stale) direct edges say, so a user gone from a nested group leaves.
func TestScopedListingTombstonesNobodyAndScopesByItsLists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	set := plan.DefaultSettings()
	set.Scope.Groups = []string{gID(1)}
	set.Groups = plan.GroupKinds{Include: []string{}}
	_, _, err := w.st.UpdateSettings(ctx, w.tenant, set)
	must(t, err)
	var users []store.DirUser
	for n := 1; n <= 6; n++ {
		users = append(users, dUser(n, "u"))
	}
	groupMember := func(n int) store.DirMember { return store.DirMember{ID: gID(n), Type: store.MemberGroup} }
	w.full(users, []store.DirGroup{dGroup(1, "scope"), dGroup(2, "nested"), dGroup(3, "other")},
		map[string][]store.DirMember{
			gID(1): {memberUser(1), groupMember(2)},
			gID(2): {memberUser(2), memberUser(3)},
			gID(3): {memberUser(4), memberUser(5)},
		}, [2]string{"https://graph/u?$deltatoken=1", "https://graph/g?$deltatoken=1"})
	appUsers := func() []string {
		t.Helper()
		us, _, err := w.st.ListAppUsers(ctx, w.tenant, "", 100)
		must(t, err)
		var ids []string
		for _, u := range us {
			ids = append(ids, u.EntraID)
		}
		return ids
	}
	wantRows(t, "app users after the whole read", appUsers(), uID(1), uID(2), uID(3))

	// User 3 left the nested group: the scope group's list names 1 and 2.
	// A list of a group outside the scope (3) names nobody in it.
	ref := w.newRun(store.KindFull)
	must(t, w.st.ApplyUsersPage(ctx, w.page(ref, 0), []store.DirUser{dUser(1, "one"), dUser(2, "u")}, w.at))
	must(t, w.st.ApplyTransitivePage(ctx, w.page(ref, 1), store.TransitivePage{GroupID: gID(1), Last: true,
		UserIDs: []string{uID(1), uID(2)}}, w.at))
	must(t, w.st.ApplyTransitivePage(ctx, w.page(ref, 2), store.TransitivePage{GroupID: gID(3), Last: true,
		UserIDs: []string{uID(4)}}, w.at))
	run := w.finish(ref, 3, [2]string{})
	if run.Status != store.StatusSucceeded || run.Counts["usersRemoved"] != 1 || run.Counts["usersUpdated"] != 1 {
		t.Fatalf("scoped run: %s %v, want succeeded with user 3 removed and user 1 renamed", run.Status, run.Counts)
	}
	wantRows(t, "app users after the scoped read", appUsers(), uID(1), uID(2))
	wantRows(t, "mirror users after the scoped read", w.rows(`SELECT entra_id FROM dir_users WHERE tenant_id = $1 AND NOT deleted ORDER BY entra_id`),
		uID(1), uID(2), uID(3), uID(4), uID(5), uID(6))
	if n, err := w.st.MirrorUserCount(ctx, w.tenant, 0); err != nil || n != 6 {
		t.Fatalf("mirror user count %d (%v), want 6: the Graph budget is sized by it", n, err)
	}
	if l := w.links(); l.Users != "https://graph/u?$deltatoken=1" {
		t.Fatalf("links after the scoped read: %+v, want the whole read's kept", l)
	}
	if run.ReadStrategy != store.ReadTransitive {
		t.Fatalf("the scoped run is recorded %s, want transitive", run.ReadStrategy)
	}

	// A run created to read transitively whose fetcher read the whole
	// directory (the settings changed meanwhile) is judged and recorded
	// as a whole read: user 6, not listed, is tombstoned.
	whole := w.full(users[:5], []store.DirGroup{dGroup(1, "scope"), dGroup(2, "nested"), dGroup(3, "other")},
		map[string][]store.DirMember{gID(1): {memberUser(1), groupMember(2)}, gID(2): {memberUser(2)}}, [2]string{})
	if whole.ReadStrategy != store.ReadFull {
		t.Fatalf("a whole read is recorded %s, want full", whole.ReadStrategy)
	}
	wantRows(t, "mirror users after the whole read", w.rows(`SELECT entra_id FROM dir_users WHERE tenant_id = $1 AND NOT deleted ORDER BY entra_id`),
		uID(1), uID(2), uID(3), uID(4), uID(5))
}
