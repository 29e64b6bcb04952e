package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// TestAutoRunKindFollowsSavedLinksAndTheWeeklyFullRead: a run created
// with KindAuto (the scheduler's and a manual trigger's) is full while the
// tenant has no saved delta links, delta once a full run's plan saved
// them, and full again when the weekly full read is due.
func TestAutoRunKindFollowsSavedLinksAndTheWeeklyFullRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newClock()
	st := storetest.New(t, store.WithClock(clock.Now))
	tenant := newTenant(t, st, 10).ID
	sync := func(kind string) store.Run {
		t.Helper()
		r, err := st.CreateRun(ctx, store.NewRun{TenantID: tenant, Kind: kind, Trigger: store.TriggerManual})
		must(t, err)
		ref := store.PageRef{TenantID: tenant, RunID: r.ID, RunSeq: r.Seq}
		must(t, st.ApplyUsersPage(ctx, ref, people(2), clock.Now()))
		ref.Page = 1
		must(t, st.ApplyGroupsPage(ctx, ref, nil, clock.Now()))
		must(t, st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 2, UsersDeltaLink: "https://graph/u?$deltatoken=1",
			GroupsDeltaLink: "https://graph/g?$deltatoken=1"}, clock.Now()))
		done, err := st.TryFinalize(ctx, tenant, r.ID, clock.Now())
		if err != nil || !done {
			t.Fatalf("finalize: %v %v", done, err)
		}
		return r
	}
	if r := sync(store.KindAuto); r.Kind != store.KindFull {
		t.Fatalf("first run: %s, want full", r.Kind)
	}
	clock.Add(time.Hour)
	run, created, err := st.QueueManualRun(ctx, tenant)
	must(t, err)
	if !created || run.Kind != store.KindDelta {
		t.Fatalf("manual run after a full one: %s (created %v), want delta", run.Kind, created)
	}
	clock.Add(7 * 24 * time.Hour)
	slot := clock.Now()
	r, err := st.CreateRun(ctx, store.NewRun{TenantID: tenant, Kind: store.KindAuto, Trigger: store.TriggerSchedule, Slot: &slot})
	must(t, err)
	if r.Kind != store.KindFull {
		t.Fatalf("a week after the full read: %s, want full", r.Kind)
	}
}
