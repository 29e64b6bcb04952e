package fetcher

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/services/graphsim"
)

// jumpClock is a budget.Clock whose time moves only when the budget
// waits: a sleep jumps to its end at once, so a run held to a few
// resource units per 10 s finishes in real seconds, and the time it
// jumped is the time it would have waited.
type jumpClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *jumpClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
	return ctx.Err()
}

// budgetHeard adds up what a budget.Observer hears.
type budgetHeard struct {
	mu               sync.Mutex
	units, corrected int
}

func (o *budgetHeard) BudgetTaken(units int, _ time.Duration) {
	o.mu.Lock()
	o.units += units
	o.mu.Unlock()
}

func (o *budgetHeard) BudgetCorrected(units int) {
	o.mu.Lock()
	o.corrected += units
	o.mu.Unlock()
}

func (o *budgetHeard) take() (units, corrected int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	units, corrected = o.units, o.corrected
	o.units, o.corrected = 0, 0
	return units, corrected
}

// TestRunPaysTheSharedGraphBudget: every Graph request of a run pays its
// estimated resource units into the shared budget (token requests do
// not), the run is held to the budget's rate, the budget grows during a
// run whose users listing shows a larger tenant than its mirror holds,
// and the next run of the tenant is sized by the users its mirror holds.
func TestRunPaysTheSharedGraphBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &jumpClock{now: start}
	heard := &budgetHeard{}
	const small = 20 // resource units per 10 s for a tenant under 50 users
	rec := e.recordAndApply()
	e.startFetcher("fetcher-a", func(c *Config) {
		c.Budget = budget.Config{Limits: budget.Limits{Small: small}, Margin: 1, Clock: clock, Observer: heard}
	})

	// The first run: the mirror is empty, so the smallest tier.
	run := e.queueRun()
	checkRun(t, e, run, rec.waitEnd(t, run.ID))
	want := 0
	for _, r := range e.graphRequests() {
		if strings.HasSuffix(r.Path, "/$batch") {
			continue // a batch costs what its requests, logged too, cost
		}
		q, err := url.ParseQuery(r.RawQuery)
		if err != nil {
			t.Fatal(err)
		}
		want += budget.Cost(r.Method, r.Path, q)
	}
	units, corrected := heard.take()
	if units == 0 || units != want {
		t.Fatalf("the budget handed out %d units; the run's %d Graph requests cost %d by the documented costs",
			units, len(e.graphRequests()), want)
	}
	// A bucket starts full at its capacity and refills at capacity per
	// 10 s: what it handed out beyond that took time (a few units of
	// slack for corrections that left it in debt at the end).
	waited := clock.Now().Sub(start)
	least := time.Duration(float64(units+corrected-small-10) / small * float64(10*time.Second))
	if waited < least {
		t.Fatalf("%d units (%+d corrected) were handed out in %s of budget time; at %d per 10 s they take at least %s",
			units, corrected, waited, small, least)
	}
	t.Logf("run 1: %d Graph requests, %d units estimated, %+d corrected by Graph, %s waited for the budget",
		len(e.graphRequests()), units, corrected, waited)

	// 300 more users make the tenant medium-sized (50 to 500 users). The
	// second run starts sized by its mirror, under 50 users, and grows
	// to the medium tier (5,000 units per 10 s) once its listing passes
	// 50 users, ten pages in: it waits less than half of what its units
	// take in the small tier even from a full bucket.
	mirror, err := e.st.MirrorUserCount(t.Context(), e.tenant.ID, 0)
	if err != nil || mirror >= 50 {
		t.Fatalf("the mirror holds %d users (%v); want under 50", mirror, err)
	}
	for i := range 300 {
		e.dir.AddUser(graphsim.User{DisplayName: fmt.Sprintf("Extra %d", i), UserPrincipalName: fmt.Sprintf("extra%d@contoso.example", i),
			UserType: "Member", AccountEnabled: true})
	}
	e.sim.ResetRequests()
	before := clock.Now()
	run = e.queueRun()
	checkRun(t, e, run, rec.waitEnd(t, run.ID))
	units, corrected = heard.take()
	small2 := time.Duration(float64(units+corrected-small-10) / small * float64(10*time.Second))
	if waited := clock.Now().Sub(before); units == 0 || waited >= small2/2 {
		t.Fatalf("run 2 waited %s of budget time for %d units (%+d corrected); in the small tier they take %s: "+
			"the budget did not grow with the listing", waited, units, corrected, small2)
	}
	t.Logf("run 2: %d units, %s waited for the budget; at least %s in the small tier", units, clock.Now().Sub(before), small2)

	// The third run: the mirror holds the tenant's users, over 50: a medium
	// tenant from the start; the run barely waits.
	if mirror, err = e.st.MirrorUserCount(t.Context(), e.tenant.ID, 0); err != nil || mirror < 50 {
		t.Fatalf("the mirror holds %d users (%v); want the tenant's, over 50", mirror, err)
	}
	e.sim.ResetRequests()
	before = clock.Now()
	run = e.queueRun()
	checkRun(t, e, run, rec.waitEnd(t, run.ID))
	units, _ = heard.take()
	if waited := clock.Now().Sub(before); waited > 2*time.Second || units == 0 {
		t.Fatalf("run 3 of a tenant of %d users waited %s of budget time for %d units: not sized by its mirror", mirror, waited, units)
	}
}

// TestUnbudgetedRunSpendsNothing: GRAPH_BUDGET=off sends Graph requests
// without the budget.
func TestUnbudgetedRunSpendsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	heard := &budgetHeard{}
	rec := e.record()
	e.startFetcher("fetcher-a", func(c *Config) {
		c.Budget = budget.Config{Observer: heard}
		c.Unbudgeted = true
	})
	run := e.queueRun()
	checkRun(t, e, run, rec.waitEnd(t, run.ID))
	if units, _ := heard.take(); units != 0 || len(e.graphRequests()) == 0 {
		t.Fatalf("an unbudgeted run took %d units for %d Graph requests", units, len(e.graphRequests()))
	}
}
