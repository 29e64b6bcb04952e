package graphsim_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// addTenantOf registers a directory as a tenant that consented to the app
// registration clientID (several tenants may share one, as a multi-tenant
// app's do) and fetches a token for it.
func (s *sim) addTenantOf(clientID string, d *graphsim.Directory) *tenantCreds {
	s.t.Helper()
	n := tenantSeq.Add(1)
	tc := &tenantCreds{id: "1a2b3c4d-0000-4000-8000-" + pad12(n), clientID: clientID, secret: "secret-" + pad12(n), dir: d}
	s.srv.AddTenant(tc.id, tc.clientID, tc.secret, d)
	status, body := s.tokenRequest(tc.id, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {tc.clientID},
		"client_secret": {tc.secret}, "scope": {"https://graph.microsoft.com/.default"},
	})
	if status != http.StatusOK {
		s.t.Fatalf("token for %s: %d %v", tc.id, status, body)
	}
	tc.token = body["access_token"].(string)
	return tc
}

// fakeClock is a simulator clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestAppBudgetIsSharedByTheAppsTenants: Graph's identity and access
// limit per application across all tenants (throttling-limits.md,
// "application | 150,000 ResourceUnits per 20 seconds"), here scaled down
// to 20 units per 20 s: two tenants of one app registration drain one
// bucket, and once it is spent both are answered 429 with the
// Application scope and a Retry-After that counts their requests, while a
// tenant of another app, asking at the same moments, is served. A tenant
// of the same app that does not enforce the budget neither pays nor waits.
func TestAppBudgetIsSharedByTheAppsTenants(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	s := newSim(t, graphsim.Options{Clock: clock.Now})
	const appX, appY = "a99e0000-0000-4000-8000-00000000000a", "a99e0000-0000-4000-8000-00000000000b"
	a := s.addTenantOf(appX, graphsim.Generate(graphsim.Spec{Seed: 51, Users: 5}))
	b := s.addTenantOf(appX, graphsim.Generate(graphsim.Spec{Seed: 52, Users: 5}))
	c := s.addTenantOf(appY, graphsim.Generate(graphsim.Spec{Seed: 53, Users: 5}))
	free := s.addTenantOf(appX, graphsim.Generate(graphsim.Spec{Seed: 54, Users: 5}))
	// Each tenant's own bucket is far from its limit: only the app's can
	// throttle. The app's refills at 1 unit a second.
	for _, tc := range []*tenantCreds{a, b, c} {
		s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 1000, AppBudget: 20})
	}
	scope := func(tc *tenantCreds) string { return "Application/ReadWrite/" + tc.clientID + "/" + tc.id }

	// /users costs 2: ten fit in the app's 20, five from each tenant. The
	// share in use shows past 80%, whichever tenant spent it.
	for i := 1; i <= 10; i++ {
		tc := a
		if i%2 == 0 {
			tc = b
		}
		r := s.get(tc.token, "/users")
		wantPct := map[int]string{9: "0.90", 10: "1.00"}[i]
		if r.status != 200 || r.header.Get("x-ms-resource-unit") != "2" || r.header.Get("x-ms-throttle-limit-percentage") != wantPct {
			t.Errorf("request %d: %d, x-ms-resource-unit %q, x-ms-throttle-limit-percentage %q (want %q)", i, r.status,
				r.header.Get("x-ms-resource-unit"), r.header.Get("x-ms-throttle-limit-percentage"), wantPct)
		}
	}
	// The app's bucket is empty: tenant A's next request waits until it
	// holds 2 units again after paying its own 2 (4 s), and counts.
	check429 := func(what string, r response, tc *tenantCreds, retryAfter, pct string) {
		t.Helper()
		code, _ := r.graphErr()
		if r.status != 429 || code != "TooManyRequests" || r.header.Get("Retry-After") != retryAfter ||
			r.header.Get("x-ms-throttle-scope") != scope(tc) ||
			r.header.Get("x-ms-throttle-information") != "ResourceUnitLimitExceeded" ||
			r.header.Get("x-ms-throttle-limit-percentage") != pct || r.header.Get("x-ms-resource-unit") != "" {
			t.Errorf("%s: %d %s, Retry-After %q (want %q), x-ms-throttle-scope %q (want %q), x-ms-throttle-information %q, "+
				"x-ms-throttle-limit-percentage %q (want %q), x-ms-resource-unit %q", what, r.status, code,
				r.header.Get("Retry-After"), retryAfter, r.header.Get("x-ms-throttle-scope"), scope(tc),
				r.header.Get("x-ms-throttle-information"), r.header.Get("x-ms-throttle-limit-percentage"), pct,
				r.header.Get("x-ms-resource-unit"))
		}
	}
	check429("tenant A past the app's budget", s.get(a.token, "/users"), a, "4.000", "1.10")
	// Tenant B spent nothing since, and is held back by A's requests too:
	// its own request counts as well, so it waits 6 s.
	check429("tenant B after A's 429", s.get(b.token, "/users"), b, "6.000", "1.20")
	// Another app's tenant is not touched, nor is a tenant of the same app
	// that does not enforce a budget.
	if r := s.get(c.token, "/users"); r.status != 200 || r.header.Get("x-ms-throttle-limit-percentage") != "" {
		t.Errorf("tenant C of another app: %d, x-ms-throttle-limit-percentage %q", r.status, r.header.Get("x-ms-throttle-limit-percentage"))
	}
	if r := s.get(free.token, "/users"); r.status != 200 {
		t.Errorf("a tenant of the app without EnforceBudget: %d", r.status)
	}

	// Retrying early only waits longer; on time, it is served.
	// (After 2 s the bucket holds -2; this request's 2 take it to -4.)
	clock.advance(2 * time.Second)
	check429("tenant A retrying 2 s early", s.get(a.token, "/users"), a, "6.000", "1.20")
	clock.advance(6 * time.Second)
	if r := s.get(a.token, "/users"); r.status != 200 || r.header.Get("x-ms-resource-unit") != "2" {
		t.Errorf("tenant A after its Retry-After: %d, x-ms-resource-unit %q", r.status, r.header.Get("x-ms-resource-unit"))
	}

	// $batch items pay one by one: from a full bucket, ten of twenty 2-unit
	// items are served and ten answered 429 with the Application scope,
	// inside a 200. They all count: the debt stops at 80% of the budget,
	// so tenant A then waits (2 + 16) / 1 s.
	clock.advance(time.Minute)
	var items []req
	for i := range 20 {
		items = append(items, getItem(string(rune('a'+i)), "/users"))
	}
	bt := s.batch(b.token, req{"requests": items}, false)
	statuses := map[int]int{}
	for id, it := range bt.items {
		statuses[it.Status]++
		if it.Status == 429 && (it.Headers["Retry-After"] == "" || it.Headers["x-ms-throttle-scope"] != scope(b) ||
			it.Headers["x-ms-throttle-information"] != "ResourceUnitLimitExceeded") {
			t.Errorf("batch item %s: 429 with headers %v, want Retry-After and scope %s", id, it.Headers, scope(b))
		}
	}
	if bt.status != 200 || statuses[200] != 10 || statuses[429] != 10 {
		t.Errorf("twenty 2-unit items against an app budget of 20: outer %d, items %v; want 10 served, 10 throttled", bt.status, statuses)
	}
	check429("tenant A after B's batch", s.get(a.token, "/users"), a, "18.000", "1.80")
	if r := s.get(c.token, "/users"); r.status != 200 {
		t.Errorf("tenant C of another app after B's batch: %d", r.status)
	}

	// Every throttled request is in the log with its Retry-After and scope,
	// those inside the batch too.
	throttled := 0
	for _, r := range s.srv.Requests() {
		if r.Status == 429 {
			throttled++
			if r.RetryAfter == "" || r.ResourceUnits != 0 || !strings.HasPrefix(r.ThrottleScope, "Application/ReadWrite/"+appX+"/") {
				t.Errorf("logged 429 %+v: want a Retry-After, the Application scope and no resource units", r)
			}
		}
	}
	if throttled != 14 {
		t.Errorf("%d 429s in the request log, want 14", throttled)
	}
}

// TestBudgetThrottleScope: a request both buckets of its tenant (the app
// in the tenant, the app across tenants) are asked to pay counts in both;
// when one cannot, the 429 names the limit that holds the request back
// longer, with its wait. With the default app budget (150,000 per 20 s) a
// tiny tenant budget alone throttles, as before the app's was modelled.
func TestBudgetThrottleScope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name              string
		budget, appBudget int
		scope, retryAfter string
		percentage        string
	}{
		// Tenant 4 per 10 s (0.4/s), app 100 per 20 s: the tenant's
		// bucket is short by 4 units, 10 s.
		{"tenant", 4, 100, "Tenant_Application", "10.000", "1.50"},
		// Tenant 4 per 10 s, app 4 per 20 s (0.2/s): both are short by 4
		// units; the app's needs 20 s, the tenant's 10.
		{"both, app longer", 4, 4, "Application", "20.000", "1.50"},
		// Tenant 8 per 10 s (0.8/s; short by nothing after 2 requests of
		// 2), app 4 per 20 s: only the app's.
		{"app", 8, 4, "Application", "20.000", "1.50"},
		{"default app budget", 4, 0, "Tenant_Application", "10.000", "1.50"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			s := newSim(t, graphsim.Options{Clock: clock.Now})
			tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 55, Users: 5}))
			s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: c.budget, AppBudget: c.appBudget})
			for range 2 {
				if r := s.get(tc.token, "/users"); r.status != 200 {
					t.Fatalf("within both budgets: %d", r.status)
				}
			}
			r := s.get(tc.token, "/users")
			wantScope := c.scope + "/ReadWrite/" + tc.clientID + "/" + tc.id
			if r.status != 429 || r.header.Get("x-ms-throttle-scope") != wantScope || r.header.Get("Retry-After") != c.retryAfter ||
				r.header.Get("x-ms-throttle-limit-percentage") != c.percentage {
				t.Errorf("%d, x-ms-throttle-scope %q, Retry-After %q, x-ms-throttle-limit-percentage %q; want 429, %q, %q, %q",
					r.status, r.header.Get("x-ms-throttle-scope"), r.header.Get("Retry-After"),
					r.header.Get("x-ms-throttle-limit-percentage"), wantScope, c.retryAfter, c.percentage)
			}
		})
	}
}

// TestDefaultAppBudget: without AppBudget an app's tenants share Graph's
// 150,000 resource units per 20 s. One tenant with a huge budget of its
// own spends them in $batch requests of twenty transitiveMembers reads
// (5 units each); the next request is throttled in the app's scope.
func TestDefaultAppBudget(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	s := newSim(t, graphsim.Options{Clock: clock.Now})
	d := graphsim.Generate(graphsim.Spec{Seed: 56, Users: 5, Groups: 1})
	tc := s.addTenant(d)
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 10_000_000})
	path := "/groups/" + d.Groups()[0].ID + "/transitiveMembers"
	var items []req
	for i := range 20 {
		items = append(items, getItem(string(rune('a'+i)), path))
	}
	for n := range 150_000 / (20 * 5) {
		b := s.batch(tc.token, req{"requests": items}, false)
		for id, it := range b.items {
			if it.Status != 200 || it.Headers["x-ms-resource-unit"] != "5" {
				t.Fatalf("batch %d, item %s, within 150,000 units: %d %v", n, id, it.Status, it.Headers)
			}
		}
	}
	r := s.get(tc.token, path)
	if r.status != 429 || r.header.Get("x-ms-throttle-scope") != "Application/ReadWrite/"+tc.clientID+"/"+tc.id ||
		r.header.Get("x-ms-throttle-limit-percentage") != "1.00" {
		t.Errorf("past 150,000 units: %d, x-ms-throttle-scope %q, x-ms-throttle-limit-percentage %q", r.status,
			r.header.Get("x-ms-throttle-scope"), r.header.Get("x-ms-throttle-limit-percentage"))
	}
}
