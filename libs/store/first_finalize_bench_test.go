package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// BenchmarkFirstFinalize measures a tenant's first finalization: every
// user, group, seat and nested membership is new, and the statistics of
// the tables every tenant shares do not know the tenant's rows yet. The
// tenant is newBenchTenant's: 50k users, 1,250 groups of 100 in chains of
// four under one company-wide group, about 350k nested memberships. Each
// op is a new tenant's first run, alone in its database or beside a
// tenant of the same size synced before it (the statistics then know
// another tenant well and take the new one for a handful of rows);
// finalize-ms is its finalization alone.
//
// Alone is the run where the planner, expecting a handful of edges,
// materialized the tenant's whole edge list inside a nested loop and
// compared it with every group of the walk: about 170 s of the run's
// 200 s here, 260 s at 100k users (see setNestLoop). Beside another
// tenant, the app's member counts read the new tenant's memberships
// once per group (RecountSyncedMembersWhole): minutes.
func BenchmarkFirstFinalize(b *testing.B) {
	const users, groups = 50_000, 1_250
	ctx := context.Background()
	dir := newBenchTenant(users, groups, 40)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tenant := 0
	// firstSync creates a tenant in st and returns its first run, fetched
	// and ready to finalize.
	firstSync := func(b *testing.B, st *store.Store) (string, string) {
		tenant++
		tn, err := st.CreateTenant(ctx, store.NewTenant{Name: "Bench", EntraTenantID: uID(900_000 + tenant),
			ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret value", Seats: users})
		if err != nil {
			b.Fatal(err)
		}
		return tn.ID, dir.fetchedFullRun(ctx, b, st, tn.ID, at).ID
	}
	for _, beside := range []bool{false, true} {
		name := "alone"
		if beside {
			name = "beside-another-tenant"
		}
		b.Run(name, func(b *testing.B) {
			var finalizing time.Duration
			for range b.N {
				b.StopTimer()
				st := storetest.New(b)
				if beside {
					tn, run := firstSync(b, st)
					if done, err := st.TryFinalize(ctx, tn, run, at); err != nil || !done {
						b.Fatalf("finalize the tenant beside: %v %v", done, err)
					}
				}
				tn, run := firstSync(b, st)
				b.StartTimer()
				start := time.Now()
				done, err := st.TryFinalize(ctx, tn, run, at)
				if err != nil || !done {
					b.Fatalf("finalize: %v %v", done, err)
				}
				finalizing += time.Since(start)
			}
			b.ReportMetric(float64(finalizing.Milliseconds())/float64(b.N), "finalize-ms")
		})
	}
}
