package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// benchTenant is the directory the finalization benchmarks sync: users,
// groups of 100 users each (group g's start at user g*stride), nested
// four deep in chains, all inside one company-wide group, the last one.
type benchTenant struct {
	users   []store.DirUser
	groups  []store.DirGroup
	members [][]store.DirMember // of groups[g]
}

func newBenchTenant(users, groups, stride int) benchTenant {
	t := benchTenant{users: make([]store.DirUser, users), groups: make([]store.DirGroup, groups+1),
		members: make([][]store.DirMember, groups+1)}
	for i := range t.users {
		id := uID(i + 1)
		t.users[i] = store.DirUser{ID: id, DisplayName: "User " + id[24:], Mail: id[24:] + "@contoso.com",
			UserPrincipalName: id[24:] + "@contoso.com", UserType: "Member", AccountEnabled: true}
	}
	for g := range groups {
		t.groups[g] = store.DirGroup{ID: gID(g + 1), DisplayName: fmt.Sprint("Group ", g+1), SecurityEnabled: true}
		for u := range 100 {
			t.members[g] = append(t.members[g], store.DirMember{ID: uID((g*stride+u)%users + 1), Type: store.MemberUser})
		}
		if g%4 != 3 { // chains of four: g+1 inside g
			t.members[g] = append(t.members[g], store.DirMember{ID: gID(g + 2), Type: store.MemberGroup})
		}
		if g%4 == 0 {
			t.members[groups] = append(t.members[groups], store.DirMember{ID: gID(g + 1), Type: store.MemberGroup})
		}
	}
	t.groups[groups] = store.DirGroup{ID: gID(groups + 1), DisplayName: "Everyone", SecurityEnabled: true}
	return t
}

// applyFull applies the tenant as a full run's pages (users 999 a page,
// the groups, each group's member list) and returns the ref of its last
// page.
func (t benchTenant) applyFull(ctx context.Context, b testing.TB, st *store.Store, ref store.PageRef, at time.Time) store.PageRef {
	for i := 0; i < len(t.users); i += 999 {
		if err := st.ApplyUsersPage(ctx, ref, t.users[i:min(i+999, len(t.users))], at); err != nil {
			b.Fatal(err)
		}
		ref.Page++
	}
	if err := st.ApplyGroupsPage(ctx, ref, t.groups, at); err != nil {
		b.Fatal(err)
	}
	for g := range t.groups {
		ref.Page++
		mp := store.MembersPage{GroupID: t.groups[g].ID, Last: true, Members: t.members[g]}
		if err := st.ApplyMembersPage(ctx, ref, mp, at); err != nil {
			b.Fatal(err)
		}
	}
	return ref
}

// fetchedFullRun creates a full run of the tenant, applies the directory
// as its pages and marks it fetched: the run waits for TryFinalize.
func (t benchTenant) fetchedFullRun(ctx context.Context, b testing.TB, st *store.Store, tenantID string, at time.Time) store.Run {
	r, err := st.CreateRun(ctx, store.NewRun{TenantID: tenantID, Kind: store.KindFull, Trigger: store.TriggerManual})
	if err != nil {
		b.Fatal(err)
	}
	ref := t.applyFull(ctx, b, st, store.PageRef{TenantID: tenantID, RunID: r.ID, RunSeq: r.Seq}, at)
	if err := st.MarkRunFetched(ctx, ref, store.Fetched{Pages: int(ref.Page) + 1}, at); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkFinalizeAfterChurn measures what finalizing a run costs when
// 100 direct memberships changed in 10 groups of a 10k-user tenant,
// planning only what changed against recomputing every membership and
// grant. The tenant has
// 400 groups of 100 users, nested four deep in chains, all inside one
// company-wide group. Each op is one run; finalize-ms is its
// finalization alone.
func BenchmarkFinalizeAfterChurn(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []store.Option
	}{{"incremental", nil}, {"full", []store.Option{store.WithFullMemberships()}}} {
		b.Run(c.name, func(b *testing.B) {
			const users, groups = 10_000, 400
			ctx := context.Background()
			st := storetest.New(b, c.opts...)
			tn, err := st.CreateTenant(ctx, store.NewTenant{Name: "Bench", EntraTenantID: "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00",
				ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret value", Seats: users})
			if err != nil {
				b.Fatal(err)
			}
			dir := newBenchTenant(users, groups, 25)
			members := dir.members
			at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			sync := func() time.Duration {
				at = at.Add(time.Hour)
				r := dir.fetchedFullRun(ctx, b, st, tn.ID, at)
				start := time.Now()
				done, err := st.TryFinalize(ctx, tn.ID, r.ID, at)
				if err != nil || !done {
					b.Fatalf("finalize: %v %v", done, err)
				}
				return time.Since(start)
			}
			sync() // the first run builds the app side
			var finalizing time.Duration
			b.ResetTimer()
			for i := range b.N {
				// 1% churn: 100 memberships change, in 10 of the groups.
				b.StopTimer()
				for k := range 100 {
					g := (i*37 + (k/10)*41) % groups
					members[g][k%100] = store.DirMember{ID: uID((i*7919+k*104729)%users + 1), Type: store.MemberUser}
				}
				b.StartTimer()
				finalizing += sync()
			}
			b.ReportMetric(float64(finalizing.Milliseconds())/float64(b.N), "finalize-ms")
		})
	}
}
