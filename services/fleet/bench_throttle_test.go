package fleet_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/graphsim"
)

// BenchmarkReportThrottledNeighbour measures issue 8's "two tenants, one
// throttled hard": a 2,000-user tenant's full run alone, and again while
// another tenant of the same app registration syncs under a Graph that
// throttles it hard (a tiny identity budget, and a 429 with Retry-After 2 s
// every fifth request besides). Graph answers both after 100 ms under
// their documented buckets; the fleet runs two fetchers, as replicas
// share tenants in production. Each time is the median of three runs.
// TestSharedGraphBudgetIsolatesTenants checks the same situation for
// correctness (both runs right, no 429 for the quiet tenant, no request
// before a Retry-After); this reports how long the quiet tenant took.
func BenchmarkReportThrottledNeighbour(b *testing.B) {
	h := newHarnessWith(b, 2, 1, nil)
	app := uuid.NewString() // one multi-tenant app, consented in both
	add := func(spec graphsim.Spec, faults graphsim.Faults) (entraTenant, string) {
		e := entraTenant{ID: uuid.NewString(), ClientID: app, Secret: "s3cret-" + uuid.NewString(), Dir: graphsim.Generate(spec)}
		h.sim.AddTenant(e.ID, e.ClientID, e.Secret, e.Dir)
		h.sim.SetFaults(e.ID, faults)
		return e, h.connect(e, spec.Users+spec.Guests)
	}
	const users = 2000
	quiet, quietID := add(benchSpec(users, 9_300), benchFaults)
	noisyFaults := benchFaults
	noisyFaults.Budget, noisyFaults.ThrottleEvery, noisyFaults.RetryAfter = 60, 5, "2"
	noisy, noisyID := add(benchSpec(users, 9_301), noisyFaults)

	waitRun(h, quietID, h.trigger(quietID)) // its first run, so that the timed ones are alike
	timeQuiet := func() time.Duration {
		var took []time.Duration
		for range 3 {
			start := time.Now()
			v, done := waitRunShort(h, quietID, h.triggerFull(quietID))
			if v.Status != "succeeded" {
				b.Fatalf("the quiet tenant's run ended %s: %s", v.Status, v.Error)
			}
			took = append(took, done.Sub(start))
		}
		slices.Sort(took)
		return took[1]
	}
	alone := timeQuiet()

	// The noisy tenant's sync is under way once Graph has throttled it.
	since := time.Now()
	noisyRun := h.trigger(noisyID)
	devenv.WaitFor(b, 10*time.Minute, "Graph to throttle the noisy tenant", func() bool {
		return tallyGraph(h.sim, noisy.ID, since).Throttled > 0
	})
	duringFrom := time.Now()
	during := timeQuiet()
	quietTally := tallyGraph(h.sim, quiet.ID, duringFrom)
	noisyTally := tallyGraph(h.sim, noisy.ID, since)
	var nv runView
	h.do("GET", "/v1/tenants/"+noisyID+"/syncs/"+noisyRun, nil, &nv)
	inFlight := 0.0
	if nv.Status != "succeeded" && nv.Status != "failed" {
		inFlight = 1
	}
	// The noisy tenant leaves the simulator, so that its run ends at its
	// next request rather than reading on under its throttle.
	h.sim.RemoveTenant(noisy.ID)
	h.wait(noisyID, noisyRun)

	b.ReportMetric(alone.Seconds(), "quiet-alone-s")
	b.ReportMetric(during.Seconds(), "quiet-during-s")
	b.ReportMetric(during.Seconds()/alone.Seconds(), "during/alone")
	b.ReportMetric(float64(quietTally.Throttled), "quiet-429s")
	b.ReportMetric(float64(noisyTally.Throttled), "noisy-429s")
	b.ReportMetric(float64(noisyTally.Early), "noisy-early-requests")
	b.ReportMetric(inFlight, "noisy-in-flight")
}
