package fetcher

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/graphsim"
)

// setUserFilter stores a user filter in the tenant's settings, as an
// admin does through the api.
func (e *env) setUserFilter(filter string) {
	e.t.Helper()
	s, err := e.st.TenantSettings(e.t.Context(), e.tenant.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	s.Scope.UserFilter = filter
	if _, _, err := e.st.UpdateSettings(e.t.Context(), e.tenant.ID, s); err != nil {
		e.t.Fatal(err)
	}
}

// kinds names a run's events for a failure message, with RunStarted's
// attempt and RunFailed's reason.
func kinds(evs []*syncv1.SyncEvent) []string {
	var out []string
	for _, ev := range evs {
		kind, _ := describe(ev)
		switch {
		case ev.GetStarted() != nil:
			kind += fmt.Sprintf("(attempt %d)", ev.GetStarted().GetAttempt())
		case ev.GetFailed() != nil:
			kind += fmt.Sprintf("(%q)", ev.GetFailed().GetError())
		}
		out = append(out, kind)
	}
	return out
}

// graphRequests is the simulator's log of this tenant's Graph requests.
func (e *env) graphRequests() []graphsim.Request {
	var out []graphsim.Request
	for _, r := range e.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") && strings.EqualFold(r.Tenant, e.entra) {
			out = append(out, r)
		}
	}
	return out
}

// usersRequests are the requests of the users listing.
func (e *env) usersRequests() []graphsim.Request {
	var out []graphsim.Request
	for _, r := range e.graphRequests() {
		if r.Path == "/v1.0/users" {
			out = append(out, r)
		}
	}
	return out
}

// TestUserFilterScopesTheUsers: a run lists the users the tenant's
// filter lets through, here one Graph serves only as an advanced query,
// and everything else as always.
func TestUserFilterScopesTheUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	const filter = "NOT (userType eq 'Guest')"
	e.setUserFilter(filter)
	e.inScope = func(u graphsim.User) bool { return u.UserType != "Guest" }
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", nil)

	f := checkRun(t, e, run, rec.waitEnd(t, run.ID))
	// The mirror will lack the users the filter hid: no delta round may
	// start from this run, so it takes no links and says why.
	if !f.GetUsersFiltered() || f.GetUsersDeltaLink() != "" || f.GetGroupsDeltaLink() != "" {
		t.Errorf("RunFetched of a filtered listing: users_filtered %v, links %q %q; want true and none",
			f.GetUsersFiltered(), f.GetUsersDeltaLink(), f.GetGroupsDeltaLink())
	}
	reqs := e.usersRequests()
	if len(reqs) < 2 {
		t.Fatalf("%d users requests: the listing did not page", len(reqs))
	}
	first, err := url.ParseQuery(reqs[0].RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if first.Get("$filter") != filter || first.Get("$count") != "true" {
		t.Errorf("first users request %q: want the filter as an advanced query", reqs[0].RawQuery)
	}
	guests := 0
	for _, u := range e.dir.Users() {
		if !e.inScope(u) {
			guests++
		}
	}
	if guests == 0 {
		t.Fatal("the directory has no guests: the filter leaves nobody out")
	}
}

// TestRefusedUserFilterFailsTheRun: Graph refuses the tenant's filter
// (onPremisesDomainName is not filterable, which the settings' syntax
// check cannot know). The run fails at once with Graph's words: no
// users page, no RunFetched (the reconciler would take the tenant for
// one without users), no retry.
func TestRefusedUserFilterFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	const filter = "onPremisesDomainName eq 'contoso.local'"
	e.setUserFilter(filter)
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", nil)

	evs := rec.waitEnd(t, run.ID)
	if len(evs) != 2 || evs[0].GetStarted() == nil || evs[1].GetFailed() == nil {
		t.Fatalf("want RunStarted then RunFailed, got %v", kinds(evs))
	}
	msg := evs[1].GetFailed().GetError()
	for _, want := range []string{"scope.userFilter", filter, "Request_UnsupportedQuery",
		"Unsupported or invalid query filter clause specified for property 'onPremisesDomainName' of resource 'User'."} {
		if !strings.Contains(msg, want) {
			t.Errorf("RunFailed %q does not say %q", msg, want)
		}
	}
	waitJobsDone(t, e)
	if n := len(rec.of(run.ID)); n != 2 {
		t.Errorf("%d events after the job was acknowledged, want 2", n)
	}
	got, err := e.st.GetRun(t.Context(), e.tenant.ID, run.ID)
	if err != nil || got.FetchAttempts != 1 {
		t.Errorf("run %+v, %v: want one fetch attempt", got, err)
	}
	// One users request, refused and not retried; nothing read after it
	// (and no delta links before it: a filtered listing takes none).
	if reqs := e.graphRequests(); len(reqs) != 1 || reqs[0].Path != "/v1.0/users" || reqs[0].Status != 400 {
		t.Errorf("Graph requests %+v, want the one refused users request", reqs)
	}
}

// TestDisconnectedTenantFailsTheRun: an admin disconnects a tenant whose
// run a fetcher had begun (so the run was not failed with the queued
// ones). The next attempt finds no credentials and fails the run at once
// with a message the admin can act on, instead of retrying until the
// job's deliveries are used up.
func TestDisconnectedTenantFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.record()
	run := e.queueRun()
	// A fetcher began the run and died before publishing anything.
	if n, err := e.st.BeginFetch(t.Context(), e.tenant.ID, run.ID); err != nil || n != 1 {
		t.Fatalf("BeginFetch = %d, %v", n, err)
	}
	if _, err := e.st.DisconnectTenant(t.Context(), e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.GetRun(t.Context(), e.tenant.ID, run.ID); err != nil || got.Status != store.StatusQueued {
		t.Fatalf("run after disconnect: %+v, %v; want it still queued", got, err)
	}
	// Two deliveries: retrying would use them both and end with a
	// different message.
	e.startFetcherOn(e.connectWith(bus.Options{JobsMaxDeliver: 2}), "fetcher-a", nil)

	evs := rec.waitEnd(t, run.ID)
	if len(evs) != 2 || evs[0].GetStarted().GetAttempt() != 2 || evs[1].GetFailed() == nil {
		t.Fatalf("want RunStarted of attempt 2 then RunFailed, got %v", kinds(evs))
	}
	if msg := evs[1].GetFailed().GetError(); msg != msgDisconnected {
		t.Errorf("RunFailed says %q, want %q", msg, msgDisconnected)
	}
	waitJobsDone(t, e)
	got, err := e.st.GetRun(t.Context(), e.tenant.ID, run.ID)
	if err != nil || got.FetchAttempts != 2 {
		t.Errorf("run %+v, %v: want exactly one more attempt", got, err)
	}
	if reqs := e.graphRequests(); len(reqs) != 0 {
		t.Errorf("%d Graph requests for a disconnected tenant", len(reqs))
	}
}
