package fleet_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestSmallTenantIsNotQueuedBehindALargeOne: a large tenant's full sync
// reads hundreds of pages faster than one reconciler applies them. Without
// a window they pile up in the shared SYNC_EVENTS queue (measured: up to
// 285 of its 304 pages at once), and a small tenant's run started
// meanwhile queues behind all of them. With a window of 4 events per
// tenant (fetcher EventsInFlight):
//   - the large tenant never has more than 4 events in the queue, so the
//     small tenant's events, in a FIFO queue, have at most 4 of the large
//     tenant's in front of them;
//   - both runs end with every user as Entra ID has them;
//   - the large run's waits show in
//     entrasync_fetcher_events_window_wait_seconds_total.
//
// How long the small run takes beside the large one is a benchmark figure
// (make bench), not something a test should time.
func TestSmallTenantIsNotQueuedBehindALargeOne(t *testing.T) {
	t.Parallel()
	const window = 4
	h := newHarnessWith(t, 1, 1, func(c *fleet.Config) { c.EventsInFlight = window })
	large := h.addEntraTenant(graphsim.Spec{Seed: 71, Users: 2500, Groups: 300, NestingDepth: 2})
	small := h.addEntraTenant(graphsim.Spec{Seed: 72, Users: 15, Groups: 2})
	tl, ts := h.connect(large, 5000), h.connect(small, 100)

	b, err := bus.Connect(context.Background(), h.natsURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Watch the large tenant's share of the queue for the whole run.
	var peak atomic.Uint64
	stop := make(chan struct{})
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_, events, err := b.TenantInFlight(context.Background(), tl)
			if err != nil {
				t.Errorf("count the large tenant's events: %v", err)
				return
			}
			peak.Store(max(peak.Load(), events))
		}
	}()

	largeRun := h.triggerFull(tl)
	applied := func() int {
		var n int
		if err := h.db.QueryRow(context.Background(),
			`SELECT count(*) FROM sync_run_pages WHERE tenant_id = $1 AND run_id = $2`, tl, largeRun).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	devenv.WaitFor(t, time.Minute, "the large run's first pages are applied", func() bool { return applied() >= 4 })

	smallRun := h.triggerFull(ts)
	sv := h.succeed(ts, smallRun)
	h.succeed(tl, largeRun)
	close(stop)
	watching.Wait()

	// The large run must have far more pages than the window, or the
	// bound would prove nothing.
	var total int
	if err := h.db.QueryRow(context.Background(),
		`SELECT pages_applied FROM sync_runs WHERE tenant_id = $1 AND id = $2`, tl, largeRun).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total < 250 {
		t.Fatalf("the large run applied %d pages; the test needs hundreds", total)
	}
	if p := peak.Load(); p > window {
		t.Errorf("the large tenant had up to %d events in SYNC_EVENTS; its window is %d", p, window)
	}
	t.Logf("large run: %d pages, at most %d of them in the queue at once", total, peak.Load())

	if d := diff(h.users(ts), expectedUsers(small.Dir, 100), userKey); d != "" {
		t.Errorf("small tenant's users (run %s %s):\n%s", smallRun, sv.Status, d)
	}
	if d := diff(h.users(tl), expectedUsers(large.Dir, 5000), userKey); d != "" {
		t.Errorf("large tenant's users:\n%s", d)
	}
	if waited := counterValue(t, h.fleet.Metrics, metrics.NameEventsWindowWait); waited <= 0 {
		t.Errorf("%s = %v; the large run must have waited for its window", metrics.NameEventsWindowWait, waited)
	}
}

// counterValue reads a counter without labels from the fleet's registry.
func counterValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s is not in the registry", name)
	return 0
}
