package fleet_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
)

// BenchmarkReportFetchers syncs 20 tenants of 1,000 users at once (a
// first full sync each, Graph at 100 ms per request under each tenant's
// bucket), on a fleet with one fetcher and then on one with four (two
// reconcilers both times), and reports tenants per second of each and
// their ratio: read from Graph (until the last Graph answer of the 20,
// what the fetchers do) and synced end to end (until the last run
// ended, reconcilers included).
func BenchmarkReportFetchers(b *testing.B) {
	const tenants, users = 20, 1000
	rate, fetchRate := map[int]float64{}, map[int]float64{}
	for _, fetchers := range []int{1, 4} {
		h := newHarnessWith(b, fetchers, 2, nil)
		var ids, entra []string
		for i := range tenants {
			e := h.addEntraTenant(benchSpec(users, int64(9_000+i)))
			h.sim.SetFaults(e.ID, benchFaults)
			ids = append(ids, h.connect(e, users))
			entra = append(entra, strings.ToLower(e.ID))
		}
		cpu := readMachineCPU(b)
		start := time.Now()
		runs := map[string]string{}
		for _, id := range ids {
			runs[id] = h.trigger(id)
		}
		var mu sync.Mutex
		var last time.Time // the last run's finish time
		parallel(ids, func(id string) {
			_, done := waitRun(h, id, runs[id])
			mu.Lock()
			defer mu.Unlock()
			if done.After(last) {
				last = done
			}
		})
		took := last.Sub(start)
		busy := readMachineCPU(b).busySince(cpu)
		var lastAnswer time.Time
		for _, r := range h.sim.Requests() {
			if slices.Contains(entra, r.Tenant) && r.At.After(lastAnswer) {
				lastAnswer = r.At
			}
		}
		fetched := lastAnswer.Add(benchLatency).Sub(start)
		rate[fetchers] = tenants / took.Seconds()
		fetchRate[fetchers] = tenants / fetched.Seconds()
		b.ReportMetric(rate[fetchers], fmt.Sprintf("fetchers%d-tenants/s", fetchers))
		b.ReportMetric(fetchRate[fetchers], fmt.Sprintf("fetchers%d-fetched/s", fetchers))
		b.ReportMetric(busy, fmt.Sprintf("fetchers%d-cpu-busy", fetchers))
		b.Logf("%d fetchers: %d tenants of %d users read from Graph in %s, synced in %s; the machine's CPUs %.0f%% busy",
			fetchers, tenants, users, fetched, took, 100*busy)
	}
	b.ReportMetric(rate[4]/rate[1], "fetchers4/fetchers1")
	b.ReportMetric(fetchRate[4]/fetchRate[1], "fetched4/fetched1")
}

// machineCPU is the time all of the machine's CPUs have spent, busy and
// in all, as /proc/stat counts it (in clock ticks) since boot.
type machineCPU struct{ busy, total uint64 }

// readMachineCPU reads /proc/stat's first line: user, nice, system, idle,
// iowait, irq, softirq, steal (guest time is already inside user and
// nice). Idle and iowait are not busy.
func readMachineCPU(b *testing.B) machineCPU {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		b.Fatalf("/proc/stat begins %q: want the cpu line", line)
	}
	var c machineCPU
	for i, f := range fields[1:9] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat cpu line %q: %v", line, err)
		}
		c.total += n
		if i != 3 && i != 4 { // idle, iowait
			c.busy += n
		}
	}
	return c
}

// busySince is the share of the machine's CPU time that was busy between
// before and c.
func (c machineCPU) busySince(before machineCPU) float64 {
	if c.total <= before.total {
		return 0
	}
	return float64(c.busy-before.busy) / float64(c.total-before.total)
}

// BenchmarkReportFairness times a 100-user tenant's full sync alone, and
// while a large tenant's first full sync is in flight on the same fleet
// (production defaults; Graph at 100 ms per request under each tenant's
// bucket). The large tenant is the largest of BENCH_SIZES up to 100,000
// users. Each figure is the median of three runs.
func BenchmarkReportFairness(b *testing.B) {
	sizes := benchSizes(b)
	big := sizes[0]
	for _, n := range sizes {
		if n <= 100_000 {
			big = n
		}
	}
	h := newHarnessWith(b, 1, 1, nil)
	small := h.addEntraTenant(benchSpec(100, 9_100))
	h.sim.SetFaults(small.ID, benchFaults)
	smallID := h.connect(small, 100)
	large := h.addEntraTenant(benchSpec(big, 9_101))
	h.sim.SetFaults(large.ID, benchFaults)
	largeID := h.connect(large, big)

	waitRun(h, smallID, h.trigger(smallID)) // its first run, so the next ones are alike
	timeSmall := func() time.Duration {
		var took []time.Duration
		for range 3 {
			start := time.Now()
			_, done := waitRunShort(h, smallID, h.triggerFull(smallID))
			took = append(took, done.Sub(start))
		}
		slices.Sort(took)
		return took[1]
	}
	alone := timeSmall()

	// The large tenant's sync is in flight once its member lists are
	// being read.
	start := time.Now()
	largeRun := h.trigger(largeID)
	devenv.WaitFor(b, 10*time.Minute, "the large tenant's member lists to be read", func() bool {
		return tallyGraph(h.sim, large.ID, start).Pages >= ceilDiv(big, graphTop)+5
	})
	during := timeSmall()
	// Whether the large sync was still going when the small runs ended.
	var lv runView
	h.do("GET", "/v1/tenants/"+largeID+"/syncs/"+largeRun, nil, &lv)
	inFlight := 0.0
	if lv.Status != "succeeded" {
		inFlight = 1
	}
	// Its end is not measured: the large tenant leaves the simulator, so
	// its run fails at its next Graph request instead of reading on for
	// minutes, and the fleet stops with nothing in flight.
	h.sim.RemoveTenant(large.ID)
	if v := h.wait(largeID, largeRun); v.Status != "failed" && v.Status != "succeeded" {
		b.Fatalf("the %d-user tenant's run ended %s", big, v.Status)
	}
	b.ReportMetric(float64(big), "large-users")
	b.ReportMetric(alone.Seconds(), "small-alone-s")
	b.ReportMetric(during.Seconds(), "small-during-s")
	b.ReportMetric(during.Seconds()/alone.Seconds(), "during/alone")
	b.ReportMetric(inFlight, "large-in-flight")
}
