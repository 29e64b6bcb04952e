package fleet_test

import (
	"fmt"
	"testing"

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
