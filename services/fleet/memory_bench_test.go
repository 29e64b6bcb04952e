package fleet_test

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// BenchmarkFirstSync100k syncs a fresh 100k-user, 2,500-group tenant
// through the whole fleet, first sync, and reports the process's peak Go
// heap while the run goes (sampled every 20 ms) and its peak resident
// set: a first sync is where the app side is built from nothing, so it
// is where memory could grow with the tenant. The simulator's directory
// lives in the same process; it weighs the same whatever the sync does,
// so compare the figures between versions of the sync, not with zero.
func BenchmarkFirstSync100k(b *testing.B) {
	h := newHarness(b, 1, 1)
	spec := graphsim.Spec{Users: 100_000, Guests: 1000, Disabled: 1000, NoMail: 1000, Groups: 2500,
		NestingDepth: 3, Devices: 50, Contacts: 20, Cycle: true}
	var peak uint64
	var users int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		spec.Seed = int64(3000 + i)
		e := h.addEntraTenant(spec)
		tenant := h.connect(e, 90_000)
		runtime.GC()
		b.StartTimer()
		stop := sampleHeap(&peak)
		run := h.sync(tenant)
		stop()
		users += run.Counts["usersInScope"]
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(peakRSS())/(1<<10), "peak-rss-MB")
	b.ReportMetric(float64(users)/float64(b.N), "users/run")
}

// sampleHeap records the largest heap in use into *peak until stop is
// called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// peakRSS is the process's peak resident set in KiB (VmHWM), 0 where
// /proc does not tell.
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
