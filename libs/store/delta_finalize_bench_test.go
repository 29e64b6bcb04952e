package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// BenchmarkDeltaFinalize measures what finalizing a delta round with 1%
// churn costs on a tenant of 20k users in 400 groups (as
// BenchmarkFinalizeAfterChurn builds them, nested four deep in chains
// inside one company-wide group): 200 users changed, 10 removed, 50
// member edges added and 50 removed in 10 groups. Finalization should
// cost what the changes cost, not what the tenant holds: finalize-ms per
// op is the delta run's TryFinalize alone, full-ms the full run's it
// starts from, and per-change / per-object their ratio of costs.
func BenchmarkDeltaFinalize(b *testing.B) {
	const users, groups = 20_000, 400
	const changed, removed, edgeChanges = 200, 10, 50
	ctx := context.Background()
	st := storetest.New(b)
	tn := newTenant(b, st, users)
	dir := newBenchTenant(users, groups, 50)
	user := func(i int, name string) store.DirUser {
		u := dir.users[i-1]
		u.DisplayName = name
		return u
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	finalize := func(ref store.PageRef, pages int) time.Duration {
		if err := st.MarkRunFetched(ctx, ref, store.Fetched{Pages: pages, UsersDeltaLink: "users-link",
			GroupsDeltaLink: "groups-link"}, at); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		done, err := st.TryFinalize(ctx, tn.ID, ref.RunID, at)
		if err != nil || !done {
			b.Fatalf("finalize: %v %v", done, err)
		}
		return time.Since(start)
	}
	newRun := func(kind string) store.PageRef {
		at = at.Add(time.Hour)
		r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: kind, Trigger: store.TriggerManual})
		if err != nil {
			b.Fatal(err)
		}
		return store.PageRef{TenantID: tn.ID, RunID: r.ID, RunSeq: r.Seq}
	}

	ref := newRun(store.KindFull)
	ref = dir.applyFull(ctx, b, st, ref, at)
	objects := users + len(dir.groups)
	for _, m := range dir.members {
		objects += len(m)
	}
	full := finalize(ref, int(ref.Page)+1)

	var finalizing time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// Each round changes other users, removes others, and moves
		// members in and out of other groups.
		var chg []store.DirUser
		for k := range changed {
			n := (i*changed+k)*97%users + 1
			chg = append(chg, user(n, fmt.Sprintf("User %d, round %d", n, i)))
		}
		var gone []store.DirRemoved
		for k := 0; len(gone) < removed; k++ {
			id := uID(users - i*2*removed - k)
			if !slices.ContainsFunc(chg, func(u store.DirUser) bool { return u.ID == id }) {
				gone = append(gone, store.DirRemoved{ID: id})
			}
		}
		var edges []store.MembersDelta
		for k := range edgeChanges / 5 {
			g := (i*7 + k*37) % groups
			md := store.MembersDelta{GroupID: gID(g + 1)}
			for j := range 5 {
				md.Added = append(md.Added, store.DirMember{ID: uID((g*50+100+i*5+j)%users + 1), Type: store.MemberUser})
				md.Removed = append(md.Removed, uID((g*50+i*5+j)%users+1))
			}
			edges = append(edges, md)
		}
		ref := newRun(store.KindDelta)
		if err := st.ApplyUsersDeltaPage(ctx, ref, chg, gone, at); err != nil {
			b.Fatal(err)
		}
		ref.Page++
		if err := st.ApplyGroupsDeltaPage(ctx, ref, nil, nil, edges, at); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		finalizing += finalize(ref, 2)
	}
	perChange := float64(finalizing) / float64(b.N) / float64(changed+removed+2*edgeChanges)
	perObject := float64(full) / float64(objects)
	b.ReportMetric(float64(finalizing.Milliseconds())/float64(b.N), "finalize-ms")
	b.ReportMetric(float64(full.Milliseconds()), "full-ms")
	b.ReportMetric(perChange/perObject, "per-change/per-object")
}
