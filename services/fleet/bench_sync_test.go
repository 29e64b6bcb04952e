package fleet_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// BenchmarkReportSync measures one tenant of each BENCH_SIZES size through
// the whole fleet, with the production defaults (one fetcher, one
// reconciler, the shared Graph budget) and Graph at 100 ms per request
// under its documented resource-unit bucket:
//
//   - a first full sync: Graph requests and RU against fullBound, wall
//     time against the Graph floor, JetStream messages per Graph page;
//   - the reconciler's rows/s against raw COPY of the same rows into the
//     same tables (copyBaseline), for that first sync (inserts) and for a
//     second full sync of the unchanged directory (Graph without latency
//     then, so the run is quick: the reconciler's time is measured on its
//     own, from the apply histogram and the run's finalize time);
//   - a delta round after 1% churn (Directory.Churn): requests against
//     the fewest delta pages that carry the changes, wall time, and rows
//     written (pg_stat_user_tables) per change (a user or group changed,
//     or a member edge added or removed).
func BenchmarkReportSync(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(sizeName(n), func(b *testing.B) { benchSync(b, n) })
	}
}

func benchSync(b *testing.B, n int) {
	h := newHarnessWith(b, 1, 1, nil)
	e := h.addEntraTenant(benchSpec(n, 8_000))
	h.sim.SetFaults(e.ID, benchFaults)
	tenant := h.connect(e, n)
	bound := boundOf(e.Dir)
	users := len(e.Dir.Users())

	// First full sync: every row is an insert.
	writes0 := tableWrites(b, h.db)
	seqs0 := jetStreamSeqs(b, h.natsURL)
	apply0 := applySeconds(b, h.fleet.Metrics)
	b.ResetTimer()
	t0 := time.Now()
	full, fullDone := waitRun(h, tenant, h.triggerFull(tenant))
	b.StopTimer()
	fullTime := fullDone.Sub(t0)
	// After ResetTimer, which drops metrics reported before it.
	b.ReportMetric(float64(users), "users")
	b.ReportMetric(float64(len(e.Dir.Groups())), "groups")
	b.ReportMetric(float64(bound.Objects), "objects")
	g := tallyGraph(h.sim, e.ID, t0)
	floor, byRU, byChain := bound.floor(users, benchLatency)
	b.ReportMetric(float64(g.Requests), "full-requests")
	b.ReportMetric(float64(g.Pages), "full-pages")
	b.ReportMetric(float64(bound.Requests), "full-requests-bound")
	b.ReportMetric(float64(bound.Pages), "full-pages-bound")
	b.ReportMetric(float64(g.RU), "full-RU")
	b.ReportMetric(float64(bound.RU), "full-RU-bound")
	b.ReportMetric(float64(g.Throttled), "full-429s")
	b.ReportMetric(float64(g.Early), "full-early-requests")
	b.ReportMetric(fullTime.Seconds(), "full-s")
	b.ReportMetric(g.Answered.Sub(t0).Seconds(), "full-read-s")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(byRU.Seconds(), "floor-RU-s")
	b.ReportMetric(byChain.Seconds(), "floor-chain-s")

	seqs1 := jetStreamSeqs(b, h.natsURL)
	var msgs, kv int64
	for name, seq := range seqs1 {
		msgs += seq - seqs0[name]
		if strings.HasPrefix(name, "KV_") {
			kv += seq - seqs0[name]
		}
		b.Logf("full sync: %d messages on stream %s", seq-seqs0[name], name)
	}
	events := seqs1["SYNC_EVENTS"] - seqs0["SYNC_EVENTS"]
	b.ReportMetric(ratio(float64(msgs), float64(g.Pages)), "nats-msgs/page")
	b.ReportMetric(ratio(float64(events), float64(g.Pages)), "event-msgs/page")
	b.ReportMetric(ratio(float64(kv), float64(g.Pages)), "kv-msgs/page")

	writes1 := tableWrites(b, h.db)
	mirror, app, _ := rowsWritten(writes0, writes1)
	fullFinalize := finalizeSeconds(b, h.db, full.RunID, fullDone)
	insertBusy := applySeconds(b, h.fleet.Metrics) - apply0 + fullFinalize
	content := dataRows(b, h.db)
	var rows int64
	for _, c := range content {
		rows += c
	}
	copied, copyTook := copyBaseline(b, h.db, slices.Sorted(maps.Keys(content)))
	copyRate := float64(copied) / copyTook.Seconds()
	b.ReportMetric(float64(mirror+app), "full-rows-written")
	b.ReportMetric(float64(rows), "data-rows")
	b.ReportMetric(float64(rows)/insertBusy, "apply-insert-rows/s")
	b.ReportMetric(copyRate, "copy-rows/s")
	b.ReportMetric(fullFinalize, "full-finalize-s")

	// The same directory again, read whole: nothing to change.
	h.sim.SetFaults(e.ID, graphsim.Faults{EnforceBudget: true})
	apply1 := applySeconds(b, h.fleet.Metrics)
	writes2 := tableWrites(b, h.db) // after the COPY's rolled-back writes
	same, sameDone := waitRun(h, tenant, h.triggerFull(tenant))
	sameBusy := applySeconds(b, h.fleet.Metrics) - apply1 + finalizeSeconds(b, h.db, same.RunID, sameDone)
	writes3 := tableWrites(b, h.db)
	mirror, app, _ = rowsWritten(writes2, writes3)
	b.ReportMetric(float64(rows)/sameBusy, "apply-nochange-rows/s")
	b.ReportMetric(float64(mirror+app), "nochange-rows-written")

	// A delta round after 1% churn.
	h.sim.SetFaults(e.ID, benchFaults)
	rep := e.Dir.Churn(8_001, 0.01)
	changed := len(rep.Users) + len(rep.Groups)
	// Every membership the round changes, including those that follow
	// from other changes (leavers', dynamic groups'): each is a row the
	// mirror must write.
	edges := rep.Edges
	t1 := time.Now()
	delta, deltaDone := waitRunShort(h, tenant, h.trigger(tenant))
	deltaTime := deltaDone.Sub(t1)
	dg := tallyGraph(h.sim, e.ID, t1)
	writes4 := tableWrites(b, h.db)
	mirror, app, all := rowsWritten(writes3, writes4)
	deltaFinalize := finalizeSeconds(b, h.db, delta.RunID, deltaDone)
	logWrites(b, "no-change full run", writes2, writes3)
	logWrites(b, "delta round", writes3, writes4)
	logPlan(b, "delta round", delta)
	// The fewest delta pages that can carry the changes: the users'
	// round and the groups' round, each at least one page.
	deltaBound := max(1, ceilDiv(len(rep.Users), deltaPage)) + max(1, ceilDiv(len(rep.Groups), deltaPage))
	isDelta := 0.0
	if delta.Kind == "delta" {
		isDelta = 1
	}
	b.ReportMetric(isDelta, "delta-kind")
	b.ReportMetric(float64(dg.Requests), "delta-requests")
	b.ReportMetric(float64(deltaBound), "delta-requests-bound")
	b.ReportMetric(float64(dg.RU), "delta-RU")
	b.ReportMetric(float64(dg.Throttled), "delta-429s")
	b.ReportMetric(float64(dg.Early), "delta-early-requests")
	b.ReportMetric(deltaTime.Seconds(), "delta-s")
	b.ReportMetric(float64(changed), "delta-objects-changed")
	b.ReportMetric(float64(changed+edges), "delta-changes")
	b.ReportMetric(float64(mirror), "delta-mirror-rows")
	b.ReportMetric(float64(app), "delta-app-rows")
	b.ReportMetric(float64(all), "delta-all-rows")
	b.ReportMetric(deltaFinalize, "delta-finalize-s")
	b.Logf("%d users: full %s (floor %s), %d requests (bound %d); delta %s, %d requests; churn: %s",
		users, fullTime, floor, g.Requests, bound.Requests, deltaTime, dg.Requests, rep)
}
