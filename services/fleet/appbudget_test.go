package fleet_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// appBudget is the simulator's budget of one app across all its tenants,
// in resource units per 20 s: Graph's is 150,000 (throttling-limits.md),
// scaled down so that two tenants' runs of a few hundred units cross it
// several times. fleetAppBudget is what the fleet believes (before its
// margin): more than Graph grants, so that only Graph's app-scoped 429s
// keep the fleet in line, yet close enough that every request gets
// through within the Graph client's attempts. (A fleet that believed
// Graph's 150,000 would send each batch whole after every Retry-After
// into a debt Graph keeps counting, and run out of attempts.)
const (
	appBudget      = 60
	fleetAppBudget = 90
)

// TestAppBudgetPausesEveryTenantOfTheApp: two tenants of one multi-tenant
// app registration sync at once on two fetchers, against an app budget
// (Graph's per-application limit across tenants) far too small for both
// runs; each tenant's own budget is Graph's and never binds. Graph answers
// 429 with x-ms-throttle-scope Application/...: the fetchers must hold
// every tenant of the app, not only the one that was answered, until the
// Retry-After has passed. Both runs succeed with the right users, and
// after each app-scoped 429 neither tenant sends Graph anything before its
// Retry-After. A tenant of another app, syncing at the same time, is not
// throttled.
func TestAppBudgetPausesEveryTenantOfTheApp(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, 2, 1, func(c *fleet.Config) {
		c.GraphBudget = budget.Config{Limits: budget.Limits{App: fleetAppBudget}}
	})
	app := uuid.NewString() // one app registration, consented in both tenants
	tenant := func(clientID string, spec graphsim.Spec) entraTenant {
		e := entraTenant{ID: uuid.NewString(), ClientID: clientID, Secret: "s3cret-" + uuid.NewString(), Dir: graphsim.Generate(spec)}
		h.sim.AddTenant(e.ID, e.ClientID, e.Secret, e.Dir)
		h.sim.SetFaults(e.ID, graphsim.Faults{EnforceBudget: true, AppBudget: appBudget})
		return e
	}
	a := tenant(app, graphsim.Spec{Seed: 61, Users: 30, Groups: 40})
	b := tenant(app, graphsim.Spec{Seed: 62, Users: 35, Groups: 45})
	other := tenant(uuid.NewString(), graphsim.Spec{Seed: 63, Users: 6, Groups: 3})
	// The other app has a small budget too, one its one small run fits in.
	h.sim.SetFaults(other.ID, graphsim.Faults{EnforceBudget: true, AppBudget: fleetAppBudget})
	const seats = 100
	ta, tb, tc := h.connect(a, seats), h.connect(b, seats), h.connect(other, seats)

	ra, rb, rc := h.trigger(ta), h.trigger(tb), h.trigger(tc)
	va, vb, vc := h.wait(ta, ra), h.wait(tb, rb), h.wait(tc, rc)
	for _, r := range []struct {
		name string
		v    runView
	}{{"A", va}, {"B", vb}, {"of the other app", vc}} {
		if r.v.Status != "succeeded" {
			t.Fatalf("tenant %s's run %s: %s %q", r.name, r.v.RunID, r.v.Status, r.v.Error)
		}
	}
	for _, c := range []struct {
		id string
		e  entraTenant
	}{{ta, a}, {tb, b}, {tc, other}} {
		if d := diff(h.users(c.id), expectedUsers(c.e.Dir, seats), userKey); d != "" {
			t.Errorf("users of tenant %s after a throttled run:\n%s", c.e.ID, d)
		}
	}

	// The app's two tenants' Graph requests, in arrival order, and the
	// other app's.
	var ofApp []graphsim.Request
	otherThrottled, otherRequests := 0, 0
	for _, r := range h.sim.Requests() {
		if !strings.HasPrefix(r.Path, "/v1.0/") {
			continue
		}
		switch {
		case strings.EqualFold(r.Tenant, a.ID), strings.EqualFold(r.Tenant, b.ID):
			ofApp = append(ofApp, r)
		case strings.EqualFold(r.Tenant, other.ID):
			otherRequests++
			if r.Status == http.StatusTooManyRequests {
				otherThrottled++
			}
		}
	}
	if otherThrottled > 0 {
		t.Errorf("the other app's tenant got %d 429s in %d Graph requests: another app's budget held it", otherThrottled, otherRequests)
	}

	// A request already on its way when a 429 arrives cannot be called
	// back (nor one that took its units just before the pause was
	// recorded): those reach Graph within moments of the 429. Anything
	// later inside the Retry-After, of either tenant, was sent after the
	// fetchers knew the app was throttled.
	const inFlight = 400 * time.Millisecond
	appThrottled, early := map[string]int{}, 0
	for _, t429 := range ofApp {
		if t429.Status != http.StatusTooManyRequests {
			continue
		}
		want := "Application/ReadWrite/" + strings.ToLower(app) + "/" + t429.Tenant
		if t429.ThrottleScope != want {
			t.Errorf("a 429 of tenant %s with x-ms-throttle-scope %q, want %q: only the app's budget is small", t429.Tenant, t429.ThrottleScope, want)
			continue
		}
		appThrottled[t429.Tenant]++
		secs, err := strconv.ParseFloat(t429.RetryAfter, 64)
		if err != nil {
			t.Fatalf("an app-scoped 429 with Retry-After %q: %v", t429.RetryAfter, err)
		}
		until := t429.At.Add(time.Duration(secs * float64(time.Second)))
		for _, r := range ofApp {
			if r.At.After(t429.At.Add(inFlight)) && r.At.Before(until) {
				early++
				if early <= 5 {
					who := "the same tenant"
					if r.Tenant != t429.Tenant {
						who = "the app's other tenant"
					}
					t.Errorf("%s's %s %s (batch item %v) reached Graph %s after an app-scoped 429 that asked to wait %ss",
						who, r.Method, r.Path, r.InBatch, r.At.Sub(t429.At).Round(time.Millisecond), t429.RetryAfter)
				}
			}
		}
	}
	if len(appThrottled) == 0 {
		t.Fatalf("the app was never throttled in %d Graph requests of its tenants: the test proves nothing", len(ofApp))
	}
	if early > 0 {
		t.Errorf("%d requests of the app's tenants reached Graph before an app-scoped Retry-After had passed", early)
	}
	t.Logf("app-scoped 429s: %d for tenant A, %d for tenant B in %d Graph requests; the other app's tenant: %d requests; runs took %s, %s and %s",
		appThrottled[strings.ToLower(a.ID)], appThrottled[strings.ToLower(b.ID)], len(ofApp), otherRequests,
		va.FinishedAt.Sub(*va.StartedAt).Round(time.Second), vb.FinishedAt.Sub(*vb.StartedAt).Round(time.Second),
		vc.FinishedAt.Sub(*vc.StartedAt).Round(time.Second))
}
