package fleet_test

import (
	"io"
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

// budgetQuota is Graph's identity budget per 10 s for a small tenant, as
// the simulator enforces it for tenant B and as the fleet's budget knows
// it; scaled down from Graph's 3,500 so that a run of a few hundred
// resource units crosses it. budgetMargin is the share the fleet hands
// out: the simulator counts in fixed 10 s windows while the budget is a
// token bucket, which may spend its capacity and a window's refill in one
// window, so the margin is under half.
const (
	budgetQuota  = 200
	budgetMargin = 0.45
)

// TestSharedGraphBudgetIsolatesTenants: two tenants of one multi-tenant
// app registration sync at once on two fetchers. Graph throttles tenant A
// hard (a tiny identity budget, and a 429 every few requests besides);
// tenant B is big enough that a fetcher unaware of the budget would pass
// Graph's quota for it. Both runs succeed, B never sees a 429, and after a
// 429 with Retry-After no fetcher sends A's Graph anything before the
// Retry-After has passed: the pause reaches every request of the tenant,
// not only the one that got the 429.
func TestSharedGraphBudgetIsolatesTenants(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, 2, 1, func(c *fleet.Config) {
		c.GraphBudget = budget.Config{Limits: budget.Limits{Small: budgetQuota}, Margin: budgetMargin}
	})
	app := uuid.NewString() // one app registration, consented in both tenants
	tenant := func(spec graphsim.Spec) entraTenant {
		e := entraTenant{ID: uuid.NewString(), ClientID: app, Secret: "s3cret-" + uuid.NewString(), Dir: graphsim.Generate(spec)}
		h.sim.AddTenant(e.ID, e.ClientID, e.Secret, e.Dir)
		return e
	}
	a := tenant(graphsim.Spec{Seed: 21, Users: 12, Groups: 10})
	b := tenant(graphsim.Spec{Seed: 22, Users: 30, Groups: 45})
	h.sim.SetFaults(a.ID, graphsim.Faults{EnforceBudget: true, Budget: 40, ThrottleEvery: 5, RetryAfter: "2"})
	h.sim.SetFaults(b.ID, graphsim.Faults{EnforceBudget: true, Budget: budgetQuota})
	ta, tb := h.connect(a, 100), h.connect(b, 100)

	ra, rb := h.trigger(ta), h.trigger(tb)
	va, vb := h.wait(ta, ra), h.wait(tb, rb)
	if va.Status != "succeeded" || vb.Status != "succeeded" {
		t.Fatalf("tenant A's run %s: %s %q; tenant B's run %s: %s %q", ra, va.Status, va.Error, rb, vb.Status, vb.Error)
	}

	of := func(e entraTenant) []graphsim.Request {
		var out []graphsim.Request
		for _, r := range h.sim.Requests() {
			if strings.EqualFold(r.Tenant, e.ID) && strings.HasPrefix(r.Path, "/v1.0/") {
				out = append(out, r)
			}
		}
		return out
	}
	reqA, reqB := of(a), of(b)
	throttledB := 0
	for _, r := range reqB {
		if r.Status == http.StatusTooManyRequests {
			throttledB++
		}
	}
	if throttledB > 0 {
		t.Errorf("tenant B got %d 429s in %d Graph requests; its budget should have kept it under Graph's quota", throttledB, len(reqB))
	}

	// A request already on its way when a 429 arrives cannot be called
	// back (nor one that took its units just before the pause was
	// recorded): those reach Graph within moments of the 429. Anything
	// later inside the Retry-After was sent after the fetcher knew.
	const inFlight = 400 * time.Millisecond
	throttledA, early := 0, 0
	for _, t429 := range reqA {
		if t429.Status != http.StatusTooManyRequests {
			continue
		}
		throttledA++
		secs, err := strconv.ParseFloat(t429.RetryAfter, 64)
		if err != nil {
			t.Fatalf("a 429 of tenant A with Retry-After %q: %v", t429.RetryAfter, err)
		}
		until := t429.At.Add(time.Duration(secs * float64(time.Second)))
		for _, r := range reqA {
			if r.At.After(t429.At.Add(inFlight)) && r.At.Before(until) {
				early++
				if early <= 5 {
					t.Errorf("tenant A's %s %s reached Graph %s after a 429 that asked to wait %ss",
						r.Method, r.Path, r.At.Sub(t429.At).Round(time.Millisecond), t429.RetryAfter)
				}
			}
		}
	}
	if throttledA == 0 {
		t.Fatalf("tenant A was never throttled in %d Graph requests: the test proves nothing", len(reqA))
	}
	if early > 0 {
		t.Errorf("%d of tenant A's requests reached Graph before a Retry-After it had received had passed", early)
	}
	t.Logf("tenant A: %d Graph requests, %d answered 429; tenant B: %d requests, none throttled; runs took %s and %s",
		len(reqA), throttledA, len(reqB), va.FinishedAt.Sub(*va.StartedAt).Round(time.Second), vb.FinishedAt.Sub(*vb.StartedAt).Round(time.Second))

	// The fleet's metrics heard the budget: units handed out, and the
	// time requests spent getting them.
	resp, err := http.Get(h.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"entrasync_graph_budget_units_total", "entrasync_graph_budget_wait_seconds_total"} {
		if v := metricValue(string(raw), name); v <= 0 {
			t.Errorf("%s = %v after two budgeted runs", name, v)
		}
	}
}

// metricValue is the value of an unlabelled sample in Prometheus's text
// format, or -1 when it is absent.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
