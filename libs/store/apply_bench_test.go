package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// BenchmarkApplyUsersPage applies a full run's page of 999 users that the
// mirror already holds as they are: for a tenant with saved delta links
// (the page of a periodic full sync, whose entries are compared with the
// mirror for drift as they are written) and for one without (a first
// sync read again). ms/page is per op.
func BenchmarkApplyUsersPage(b *testing.B) {
	b.Run("links", func(b *testing.B) { benchmarkApplyUsersPage(b, true) })
	b.Run("no-links", func(b *testing.B) { benchmarkApplyUsersPage(b, false) })
}

func benchmarkApplyUsersPage(b *testing.B, links bool) {
	const users = 999
	ctx := context.Background()
	st := storetest.New(b)
	tn := newTenant(b, st, users)
	page := newBenchTenant(users, 0, 50).users
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	newRun := func() store.PageRef {
		at = at.Add(time.Hour)
		r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
		if err != nil {
			b.Fatal(err)
		}
		return store.PageRef{TenantID: tn.ID, RunID: r.ID, RunSeq: r.Seq}
	}
	// A first full run: the mirror holds the users and, once the run is
	// finalized, the tenant has delta links.
	ref := newRun()
	if err := st.ApplyUsersPage(ctx, ref, page, at); err != nil {
		b.Fatal(err)
	}
	if links {
		if err := st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 1, UsersDeltaLink: "users-link",
			GroupsDeltaLink: "groups-link"}, at); err != nil {
			b.Fatal(err)
		}
		if done, err := st.TryFinalize(ctx, tn.ID, ref.RunID, at); err != nil || !done {
			b.Fatalf("finalize: %v %v", done, err)
		}
	}

	ref = newRun()
	b.ResetTimer()
	for i := range b.N {
		ref.Page = int32(i)
		if err := st.ApplyUsersPage(ctx, ref, page, at); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}
