package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// TestStuckRunsAreFoundAndFailed: a run a fetcher began that stopped
// moving is listed once nothing happened to it for the threshold and no
// fetcher holds the tenant's lease; FailStuckRun ends it, judging again,
// so progress made after the listing saves a run.
func TestStuckRunsAreFoundAndFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newClock()
	st := storetest.New(t, store.WithClock(clock.Now))
	tn := newTenant(t, st, 5)
	t0 := clock.Now()
	newRun := func() store.Run {
		t.Helper()
		r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
		must(t, err)
		return r
	}
	ref := func(r store.Run, page int32) store.PageRef {
		return store.PageRef{TenantID: r.TenantID, RunID: r.ID, RunSeq: r.Seq, Page: page}
	}
	unbegun := newRun() // no fetcher took its job: the other sweep's
	begun := newRun()   // a fetcher began it, then nothing
	_, err := st.BeginFetch(ctx, tn.ID, begun.ID)
	must(t, err)
	paging := newRun() // started, then a page ten minutes in
	_, err = st.BeginFetch(ctx, tn.ID, paging.ID)
	must(t, err)
	must(t, st.MarkRunStarted(ctx, ref(paging, 0), t0))
	must(t, st.ApplyUsersPage(ctx, ref(paging, 0), []store.DirUser{{ID: "8d2f0c1e-0000-4000-8000-000000000001",
		DisplayName: "Ada", UserPrincipalName: "ada@contoso.example", UserType: "Member", AccountEnabled: true}},
		t0.Add(10*time.Minute)))
	over := newRun() // failed already
	must(t, st.MarkRunFailed(ctx, ref(over, 0), "boom", store.GraphStats{}, t0))

	stuck := func(since time.Time) []string {
		t.Helper()
		runs, err := st.ListStuckRuns(ctx, since)
		must(t, err)
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	same := func(got []string, want ...store.Run) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i].ID {
				return false
			}
		}
		return true
	}
	name := map[string]string{unbegun.ID: "unbegun", begun.ID: "begun", paging.ID: "paging", over.ID: "over"}
	names := func(ids []string) (out []string) {
		for _, id := range ids {
			out = append(out, name[id])
		}
		return out
	}

	clock.Add(20 * time.Minute)
	threshold := 15 * time.Minute
	if got := stuck(clock.Now().Add(-threshold)); !same(got, begun) {
		t.Fatalf("stuck after 20 min: %v, want [begun]", names(got))
	}

	// A fetcher working on the tenant: nothing of it is stuck, however
	// far the scheduler's clock runs ahead (leases go by the database's).
	ok, err := st.AcquireLease(ctx, tn.ID, "fetcher-1", time.Minute)
	must(t, err)
	if !ok {
		t.Fatal("lease not taken")
	}
	clock.Add(2 * time.Minute)
	if got := stuck(clock.Now().Add(-threshold)); len(got) != 0 {
		t.Fatalf("stuck while the tenant is leased: %v", names(got))
	}
	if failed, err := st.FailStuckRun(ctx, tn.ID, begun.ID, clock.Now().Add(-threshold), "gave up"); err != nil || failed {
		t.Fatalf("FailStuckRun under a live lease = %v, %v", failed, err)
	}
	// The lease runs out (shortened to let the test see it expire).
	ok, err = st.AcquireLease(ctx, tn.ID, "fetcher-1", 100*time.Millisecond)
	must(t, err)
	if !ok {
		t.Fatal("lease not shortened")
	}
	devenv.WaitFor(t, 10*time.Second, "the lease to expire and the begun run to be stuck", func() bool {
		return same(stuck(clock.Now().Add(-threshold)), begun)
	})

	clock.Add(10 * time.Minute) // 32 min: paging's last page is 22 min old
	since := clock.Now().Add(-threshold)
	if got := stuck(since); !same(got, begun, paging) {
		t.Fatalf("stuck after 32 min: %v, want [begun paging]", names(got))
	}
	// A page of paging arrives after the listing: it is not stuck any more.
	must(t, st.ApplyUsersPage(ctx, ref(paging, 1), nil, clock.Now()))
	if failed, err := st.FailStuckRun(ctx, tn.ID, paging.ID, since, "gave up"); err != nil || failed {
		t.Fatalf("FailStuckRun of a run that moved since = %v, %v", failed, err)
	}

	const msg = "no progress for 15m0s; given up"
	failed, err := st.FailStuckRun(ctx, tn.ID, begun.ID, since, msg)
	if err != nil || !failed {
		t.Fatalf("FailStuckRun(begun) = %v, %v", failed, err)
	}
	got, err := st.GetRun(ctx, tn.ID, begun.ID)
	must(t, err)
	if got.Status != store.StatusFailed || got.Error != msg || got.FinishedAt == nil || !got.FinishedAt.Equal(clock.Now()) {
		t.Fatalf("begun after FailStuckRun: %s %q finished %v", got.Status, got.Error, got.FinishedAt)
	}
	if failed, err := st.FailStuckRun(ctx, tn.ID, begun.ID, since, msg); err != nil || failed {
		t.Fatalf("FailStuckRun of a failed run = %v, %v", failed, err)
	}
	for _, r := range []store.Run{unbegun, paging, over} {
		if failed, err := st.FailStuckRun(ctx, tn.ID, r.ID, since, msg); err != nil || failed {
			t.Errorf("FailStuckRun(%s) = %v, %v", name[r.ID], failed, err)
		}
	}
	if got, err := st.GetRun(ctx, tn.ID, paging.ID); err != nil || got.Status != store.StatusRunning || got.PagesApplied != 2 {
		t.Errorf("paging = %s with %d pages, %v; want running with 2", got.Status, got.PagesApplied, err)
	}

	if _, err := st.FailStuckRun(ctx, tn.ID, begun.ID, since, " "); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty message: %v", err)
	}
	if _, err := st.FailStuckRun(ctx, tn.ID, "not-a-run", since, msg); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bad run id: %v", err)
	}
}

// TestManualTriggersJoinTheWaitingRun: triggers while a run waits for a
// fetcher return that run; once a fetcher began it, a trigger queues a
// new run behind it. Concurrent triggers agree on one run.
func TestManualTriggersJoinTheWaitingRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	tn := newTenant(t, st, 5)

	// The scheduler's first run waits: a trigger joins it.
	slot := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	scheduled, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerSchedule, Slot: &slot})
	must(t, err)
	run, created, err := st.QueueManualRun(ctx, tn.ID)
	if err != nil || created || run.ID != scheduled.ID || run.Status != store.StatusQueued {
		t.Fatalf("trigger with a waiting run = %s (%s), created %v, %v; want the waiting run %s", run.ID, run.Status, created, err, scheduled.ID)
	}

	// A fetcher began it: the next trigger queues a run of its own, and
	// concurrent triggers all get that one.
	_, err = st.BeginFetch(ctx, tn.ID, scheduled.ID)
	must(t, err)
	const n = 8
	ids := make([]string, n)
	var made atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, created, err := st.QueueManualRun(ctx, tn.ID)
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				made.Add(1)
			}
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	if made.Load() != 1 {
		t.Fatalf("%d of %d concurrent triggers created a run, want 1", made.Load(), n)
	}
	for _, id := range ids {
		if id != ids[0] || id == scheduled.ID {
			t.Fatalf("concurrent triggers got runs %v, want one new run", ids)
		}
	}
	manual, err := st.GetRun(ctx, tn.ID, ids[0])
	must(t, err)
	if manual.Trigger != store.TriggerManual || manual.Seq != scheduled.Seq+1 {
		t.Fatalf("new run: trigger %s, seq %d; want manual with seq %d", manual.Trigger, manual.Seq, scheduled.Seq+1)
	}

	if _, _, err := st.QueueManualRun(ctx, "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
	if _, _, err := st.QueueManualRun(ctx, "nope"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad tenant id: %v", err)
	}
}
