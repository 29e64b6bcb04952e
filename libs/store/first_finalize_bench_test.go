package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// BenchmarkFirstFinalize measures a tenant's first finalization: every
// user, group, seat and nested membership is new, and the mirror's
// statistics do not know the tenant's rows yet. The tenant is
// newBenchTenant's: 50k users, 1,250 groups of 100 in chains of four under
// one company-wide group, about 350k nested memberships. Each op is a
// new tenant's first run; finalize-ms is its finalization alone.
//
// This is the run where the planner, expecting a handful of edges,
// materialized the tenant's whole edge list inside a nested loop and
// compared it with every group of the walk: about 170 s of the run's
// 200 s here, 260 s at 100k users (see setNestLoop).
func BenchmarkFirstFinalize(b *testing.B) {
	const users, groups = 50_000, 1_250
	ctx := context.Background()
	st := storetest.New(b)
	dir := newBenchTenant(users, groups, 40)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var finalizing time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		tn, err := st.CreateTenant(ctx, store.NewTenant{Name: "Bench", EntraTenantID: uID(900_000 + i),
			ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret value", Seats: users})
		if err != nil {
			b.Fatal(err)
		}
		r := dir.fetchedFullRun(ctx, b, st, tn.ID, at)
		b.StartTimer()
		start := time.Now()
		done, err := st.TryFinalize(ctx, tn.ID, r.ID, at)
		if err != nil || !done {
			b.Fatalf("finalize: %v %v", done, err)
		}
		finalizing += time.Since(start)
	}
	b.ReportMetric(float64(finalizing.Milliseconds())/float64(b.N), "finalize-ms")
}
