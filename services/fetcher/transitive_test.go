package fetcher

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestScopedTenantIsReadTransitively: a tenant that syncs only the
// members of a group with nested groups, and imports no groups, is read
// the whole way once (its size is unknown before); its next run is read
// through the scope group's transitiveMembers cast to users, as an
// advanced query, and nothing else: users pages with each user once, one
// transitive list, no groups, no member lists, no delta links. Applied,
// it leaves the app with the users the whole read gave it, and the
// mirror keeps the users outside the scope.
func TestScopedTenantIsReadTransitively(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	scope := e.dir.NestedChain()[0]
	s, err := e.st.TenantSettings(t.Context(), e.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	s.Scope.Groups = []string{scope}
	s.Groups = plan.GroupKinds{Include: []string{}}
	if _, _, err := e.st.UpdateSettings(t.Context(), e.tenant.ID, s); err != nil {
		t.Fatal(err)
	}
	var want []string // the scope's users the app takes: guests stay out
	for _, u := range e.dir.TransitiveUsers(scope) {
		if u.UserType != "Guest" {
			want = append(want, u.ID)
		}
	}
	if len(want) < 2*pageSize || len(e.dir.DirectMembers(scope)) >= len(e.dir.TransitiveMembers(scope)) {
		t.Fatalf("the scope group has %d users, %d direct members of %d nested: too few to page or no nesting",
			len(want), len(e.dir.DirectMembers(scope)), len(e.dir.TransitiveMembers(scope)))
	}
	appUsers := func() []string {
		t.Helper()
		us, _, err := e.st.ListAppUsers(t.Context(), e.tenant.ID, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range us {
			ids = append(ids, u.EntraID)
		}
		return ids
	}
	finished := func(run store.Run) {
		t.Helper()
		waitRun(t, e, run.ID, store.StatusSucceeded)
	}

	rec := e.recordAndApply()
	e.startFetcher("fetcher-a", nil)
	whole := e.queueRun()
	if whole.ReadStrategy != store.ReadFull {
		t.Fatalf("first run reads %s, want full: the tenant's size is not known yet", whole.ReadStrategy)
	}
	checkRun(t, e, whole, rec.waitEnd(t, whole.ID))
	finished(whole)
	assertSameSet(t, "app users after the whole read", appUsers(), want)
	mirrored, err := e.st.MirrorUserCount(t.Context(), e.tenant.ID, 0)
	if err != nil {
		t.Fatal(err)
	}

	before := len(e.graphRequests())
	run := e.queueRun()
	if run.ReadStrategy != store.ReadTransitive {
		t.Fatalf("second run reads %s, want transitive", run.ReadStrategy)
	}
	evs := rec.waitEnd(t, run.ID)
	finished(run)

	var users, listed []string
	lists := 0
	for _, ev := range evs {
		switch b := ev.GetBody().(type) {
		case *syncv1.SyncEvent_Users:
			for _, u := range b.Users.GetUsers() {
				users = append(users, u.GetId())
			}
		case *syncv1.SyncEvent_TransitiveMembers:
			if b.TransitiveMembers.GetGroupId() != scope {
				t.Errorf("transitive list of group %s, want only the scope group's", b.TransitiveMembers.GetGroupId())
			}
			listed = append(listed, b.TransitiveMembers.GetUserIds()...)
			if b.TransitiveMembers.GetLast() {
				lists++
			}
		case *syncv1.SyncEvent_Started:
		case *syncv1.SyncEvent_Fetched:
			if b.Fetched.GetUsersDeltaLink() != "" || b.Fetched.GetGroupsDeltaLink() != "" {
				t.Errorf("a transitive run took delta links: %v", b.Fetched)
			}
		default:
			t.Errorf("a transitive run published %v", kinds([]*syncv1.SyncEvent{ev}))
		}
	}
	var everyone []string
	for _, u := range e.dir.TransitiveUsers(scope) {
		everyone = append(everyone, u.ID)
	}
	assertSameSet(t, "users pages", users, everyone) // each user once
	assertSameSet(t, "transitive list", listed, everyone)
	if lists != 1 {
		t.Errorf("%d transitive lists ended, want 1", lists)
	}

	reqs := e.graphRequests()[before:]
	ru := 0
	for _, r := range reqs {
		if !strings.HasSuffix(strings.ToLower(r.Path), "/groups/"+scope+"/transitivemembers/graph.user") {
			t.Errorf("a transitive run sent %s %s?%s", r.Method, r.Path, r.RawQuery)
			continue
		}
		ru += r.ResourceUnits
	}
	if q, _ := url.ParseQuery(reqs[0].RawQuery); q.Get("$count") != "true" || q.Get("$select") == "" {
		t.Errorf("first transitive request %q: want the cast as an advanced query ($count=true) with $select", reqs[0].RawQuery)
	}
	pages := (len(everyone) + pageSize - 1) / pageSize
	if len(reqs) != pages {
		t.Errorf("%d Graph requests for %d users at %d a page, want %d", len(reqs), len(everyone), pageSize, pages)
	}
	t.Logf("transitive run: %d requests, %d RU for %d scope users (whole read: %d requests before)",
		len(reqs), ru, len(everyone), before)

	assertSameSet(t, "app users after the transitive read", appUsers(), want)
	if n, err := e.st.MirrorUserCount(t.Context(), e.tenant.ID, 0); err != nil || n != mirrored {
		t.Errorf("mirror holds %d users after the transitive read (%v), want the %d the whole read left", n, err, mirrored)
	}
}

// TestTransitiveReadOfGoneOrRefusedScopeGroups: the scope groups' first
// pages come in one $batch; a scope group Graph deleted since the whole
// read is an empty transitive list, one page marked last (its users leave the scope, as when a whole read finds the
// group gone); one whose members Graph refuses (403, hidden membership
// without Member.Read.Hidden) fails the run with Graph's words, since
// without its list nobody can tell who is in scope.
func TestTransitiveReadOfGoneOrRefusedScopeGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	someone := e.dir.Users()[0].ID
	doomed := e.dir.AddGroup(graphsim.Group{DisplayName: "Doomed", SecurityEnabled: true})
	hidden := e.dir.AddGroup(graphsim.Group{DisplayName: "Hidden", SecurityEnabled: true, Visibility: "HiddenMembership"})
	for _, g := range []string{doomed.ID, hidden.ID} {
		if err := e.dir.AddMember(g, graphsim.Member{ID: someone, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := e.st.TenantSettings(t.Context(), e.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	s.Scope.Groups = []string{e.dir.NestedChain()[0], doomed.ID, hidden.ID} // read in this order
	s.Groups = plan.GroupKinds{Include: []string{}}
	if _, _, err := e.st.UpdateSettings(t.Context(), e.tenant.ID, s); err != nil {
		t.Fatal(err)
	}
	rec := e.recordAndApply()
	e.startFetcher("fetcher-a", nil)
	whole := e.queueRun()
	rec.waitEnd(t, whole.ID)
	waitRun(t, e, whole.ID, store.StatusSucceeded)

	if err := e.dir.DeleteGroup(doomed.ID); err != nil {
		t.Fatal(err)
	}
	before := len(e.graphRequests())
	run := e.queueRun()
	if run.ReadStrategy != store.ReadTransitive {
		t.Fatalf("second run reads %s, want transitive", run.ReadStrategy)
	}
	evs := rec.waitEnd(t, run.ID)
	// The three lists' first pages come in one $batch.
	batches, items := 0, 0
	for _, r := range e.graphRequests()[before:] {
		switch {
		case r.InBatch:
			items++
			if !strings.HasSuffix(r.Path, "/transitiveMembers/graph.user") {
				t.Errorf("batch item %s, want a transitive user list", r.Path)
			}
		case strings.HasSuffix(r.Path, "/$batch"):
			batches++
		}
	}
	if batches != 1 || items != 3 {
		t.Errorf("%d batches of %d requests, want one of the 3 scope groups' first pages", batches, items)
	}
	var doomedPages []*syncv1.TransitiveMembersPage
	for _, ev := range evs {
		if tm := ev.GetTransitiveMembers(); tm != nil && tm.GetGroupId() == doomed.ID {
			doomedPages = append(doomedPages, tm)
		}
	}
	if len(doomedPages) != 1 || !doomedPages[0].GetLast() || len(doomedPages[0].GetUserIds()) != 0 {
		t.Errorf("the deleted scope group's list: %v; want one empty page marked last", doomedPages)
	}
	waitRun(t, e, run.ID, store.StatusSucceeded)

	// Lists are published side by side: the refusal fails the run
	// whichever list it meets first.
	if err := e.sim.SetPermissions(e.entra, graphsim.Permissions{NoHiddenMembership: true}); err != nil {
		t.Fatal(err)
	}
	run = e.queueRun()
	evs = rec.waitEnd(t, run.ID)
	for _, ev := range evs {
		if tm := ev.GetTransitiveMembers(); tm != nil && tm.GetGroupId() == hidden.ID {
			t.Errorf("the refused group has a transitive page: %v", tm)
		}
	}
	failed := evs[len(evs)-1].GetFailed()
	if failed == nil || !strings.Contains(failed.GetError(), hidden.ID) || !strings.Contains(failed.GetError(), "Authorization_RequestDenied") ||
		!strings.Contains(failed.GetError(), "who is in scope") {
		t.Fatalf("the run ended %v; want RunFailed naming the refused scope group and Graph's code", kinds(evs))
	}
}

// waitRun waits until the run has status.
func waitRun(t *testing.T, e *env, runID, status string) {
	t.Helper()
	devenv.WaitFor(t, 45*time.Second, "run "+status, func() bool {
		r, err := e.st.GetRun(t.Context(), e.tenant.ID, runID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == store.StatusFailed {
			t.Fatalf("run %s failed: %s", runID, r.Error)
		}
		return r.Status == status
	})
}
