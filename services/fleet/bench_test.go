package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// BenchmarkFullSync measures a first full sync of one tenant through the
// whole fleet (api → JetStream → fetchers → Graph simulator over HTTPS →
// JetStream → reconcilers → Postgres), at two tenant sizes and with one or
// two replicas of each worker. Each iteration syncs a fresh tenant.
// Reported: users synced per second and Graph requests per run.
func BenchmarkFullSync(b *testing.B) {
	for _, size := range []struct{ users, groups int }{{2000, 50}, {10000, 250}} {
		for _, replicas := range []int{1, 2} {
			name := fmt.Sprintf("users=%d/groups=%d/replicas=%d", size.users, size.groups, replicas)
			b.Run(name, func(b *testing.B) {
				h := newHarness(b, replicas, replicas)
				spec := graphsim.Spec{Users: size.users, Guests: size.users / 50, Disabled: size.users / 100,
					NoMail: size.users / 100, Groups: size.groups, NestingDepth: 3, Devices: 5, Contacts: 2, Cycle: true}
				var requests int64
				members := 0
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					spec.Seed = int64(1000 + i)
					e := h.addEntraTenant(spec)
					tenant := h.connect(e, size.users)
					b.StartTimer()
					run := h.sync(tenant)
					requests += run.GraphRequests
					members += int(run.Counts["usersInScope"])
				}
				b.ReportMetric(float64(members)/b.Elapsed().Seconds(), "users/s")
				b.ReportMetric(float64(requests)/float64(b.N), "graph-requests/run")
			})
		}
	}
}

// BenchmarkGraphLatency measures a full sync when every Graph request
// takes 20 ms, as Graph's do from a data centre (the simulator answers
// in well under a millisecond otherwise), reading one group's member
// lists at a time against four at a time (fetcher.Config.
// GroupConcurrency). Users and groups are listed page by page either way.
func BenchmarkGraphLatency(b *testing.B) {
	const users, groups = 2000, 100
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("latency=20ms/groups=%d/group-concurrency=%d", groups, conc), func(b *testing.B) {
			h := newHarnessWith(b, 1, 1, func(c *fleet.Config) { c.GroupConcurrency = conc })
			spec := graphsim.Spec{Users: users, Groups: groups, NestingDepth: 3, Cycle: true}
			var requests int64
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				spec.Seed = int64(2000 + i)
				e := h.addEntraTenant(spec)
				h.sim.SetFaults(e.ID, graphsim.Faults{Latency: 20 * time.Millisecond})
				tenant := h.connect(e, users)
				b.StartTimer()
				run := h.sync(tenant)
				if run.Status != "succeeded" {
					b.Fatalf("run %s: %s", run.Status, run.Error)
				}
				requests += run.GraphRequests
			}
			b.ReportMetric(float64(requests)/float64(b.N), "graph-requests/run")
		})
	}
}
