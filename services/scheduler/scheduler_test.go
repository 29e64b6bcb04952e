package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/scheduler"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// clock is a hand-moved clock shared by the store and the schedulers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// env is a database, a NATS server and a clock for one test.
type env struct {
	t     *testing.T
	clock *clock
	st    *store.Store
	js    jetstream.JetStream
	nats  string
	log   zerolog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &clock{now: time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)}, nats: devenv.NATS(t),
		log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	box, err := secret.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.st, err = store.Open(ctx, devenv.Database(t), box, e.log, store.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.st.Close)
	nc, err := nats.Connect(e.nats)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return e
}

// scheduler returns a scheduler with its own bus connection, as a
// replica in its own process would have.
func (e *env) scheduler(opts bus.Options) *scheduler.Scheduler {
	e.t.Helper()
	b, err := bus.ConnectWith(context.Background(), e.nats, opts, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(b.Close)
	s, err := scheduler.New(scheduler.Config{Clock: e.clock.Now}, scheduler.Deps{Bus: b, Store: e.st, Logger: e.log})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) tenant(interval time.Duration) store.Tenant {
	e.t.Helper()
	t, err := e.st.CreateTenant(context.Background(), store.NewTenant{
		Name: "Contoso", EntraTenantID: "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00",
		ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret", Seats: 10, SyncInterval: interval,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// intoNewSlot moves the clock to the start of the tenant's next slot of
// interval. A test whose passes span less than interval then runs them
// all in that one slot: a tenant's slots begin at a moment its id picks,
// and a boundary crossed midway would schedule another run.
func (e *env) intoNewSlot(tenantID string, interval time.Duration) {
	e.t.Helper()
	now := e.clock.Now()
	next := scheduler.Slot(tenantID, interval, now).Add(interval)
	e.clock.Add(next.Sub(now))
}

// tickAll ticks the schedulers at the same time, as replicas do.
func (e *env) tickAll(ss ...*scheduler.Scheduler) {
	e.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(ss))
	for i, s := range ss {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Tick(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// jobs returns the jobs in SYNC_JOBS with their message ids.
func (e *env) jobs() (ids []string, jobs []*syncv1.SyncJob) {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // a dedup probe, deleted (forgetDedupIDs)
		}
		if err != nil {
			e.t.Fatal(err)
		}
		j := &syncv1.SyncJob{}
		if err := proto.Unmarshal(m.Data, j); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(nats.MsgIdHdr))
		jobs = append(jobs, j)
	}
	return ids, jobs
}

// forgetDedupIDs waits until SYNC_JOBS has forgotten the message id of
// every job published so far, so that publishing one again would add a
// copy instead of being dropped as a duplicate.
//
// It watches the stream's own dedup state with a probe: a message with a
// fresh id, published now and deleted again at once. While JetStream
// answers a republish of the probe with a duplicate acknowledgement, it
// still knows the id; it forgets ids in the order they came, each once
// the window has passed, so once it has forgotten the probe it has
// forgotten every older id too. Every probe that is stored is deleted
// again, so the stream holds only jobs.
func (e *env) forgetDedupIDs() {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		e.t.Fatal(err)
	}
	subject, id := bus.SubjectJobs+"dedup-probe", fmt.Sprintf("dedup-probe-%d", time.Now().UnixNano())
	stored := func() bool {
		ack, err := e.js.Publish(ctx, subject, nil, jetstream.WithMsgID(id))
		if err != nil {
			e.t.Fatal(err)
		}
		if ack.Duplicate {
			return false
		}
		if err := s.DeleteMsg(ctx, ack.Sequence); err != nil {
			e.t.Fatal(err)
		}
		return true
	}
	if !stored() {
		e.t.Fatalf("the dedup probe %s was taken for a duplicate on first sight", id)
	}
	devenv.WaitFor(e.t, 30*time.Second, "SYNC_JOBS to forget the message ids published so far", stored)
}

func (e *env) runs(tenantID string) []store.Run {
	e.t.Helper()
	runs, err := e.st.ListRuns(context.Background(), tenantID, 0, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	return runs
}

func TestReplicasScheduleOneRunPerSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.scheduler(bus.Options{}), e.scheduler(bus.Options{})
	ten := e.tenant(time.Hour)

	// A tenant connected a moment ago is due at once.
	e.tickAll(a, b)
	runs := e.runs(ten.ID)
	if len(runs) != 1 {
		t.Fatalf("%d runs after the first pass, want 1", len(runs))
	}
	first := runs[0]
	slot := scheduler.Slot(ten.ID, time.Hour, e.clock.Now())
	if first.Trigger != store.TriggerSchedule || first.Slot == nil || !first.Slot.Equal(slot) {
		t.Fatalf("run %+v, want a scheduled run of slot %s", first, slot)
	}
	ids, jobs := e.jobs()
	if len(jobs) != 1 || ids[0] != scheduler.SlotMsgID(ten.ID, slot) || jobs[0].RunId != first.ID ||
		jobs[0].Trigger != syncv1.Trigger_TRIGGER_SCHEDULE || jobs[0].RunSeq != first.Seq || jobs[0].TenantId != ten.ID {
		t.Fatalf("jobs %v %v, want one job of run %s with id %s", ids, jobs, first.ID, scheduler.SlotMsgID(ten.ID, slot))
	}

	// Later in the same slot: nothing new.
	e.clock.Add(20 * time.Minute)
	if scheduler.Slot(ten.ID, time.Hour, e.clock.Now()).Equal(slot) {
		e.tickAll(a, b)
		if n := len(e.runs(ten.ID)); n != 1 {
			t.Fatalf("%d runs after a pass in the same slot, want 1", n)
		}
	}

	// The next slot: one more run and one more job.
	e.clock.Add(time.Hour)
	next := scheduler.Slot(ten.ID, time.Hour, e.clock.Now())
	if !next.After(slot) {
		t.Fatalf("slot did not move: %s then %s", slot, next)
	}
	e.tickAll(a, b)
	runs = e.runs(ten.ID)
	if len(runs) != 2 || runs[0].Slot == nil || !runs[0].Slot.Equal(next) || runs[0].Seq != first.Seq+1 {
		t.Fatalf("runs %+v, want a second run for slot %s", runs, next)
	}
	ids, _ = e.jobs()
	if len(ids) != 2 || ids[1] != scheduler.SlotMsgID(ten.ID, next) {
		t.Fatalf("job ids %v, want a second one for slot %s", ids, next)
	}
}

func TestStaleQueuedRunIsPublishedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A short dedup window shows that the sweeper itself, not JetStream's
	// dedup, keeps a waiting job from being published twice.
	s := e.scheduler(bus.Options{Duplicates: 100 * time.Millisecond})
	ten := e.tenant(24 * time.Hour)
	e.intoNewSlot(ten.ID, 24*time.Hour)
	e.tickAll(s) // the tenant's first scheduled run
	if ids, _ := e.jobs(); len(ids) != 1 {
		t.Fatalf("%d jobs after the first pass, want 1", len(ids))
	}

	// The api recorded a run and died before publishing its job.
	lost, err := e.st.CreateRun(context.Background(), store.NewRun{TenantID: ten.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(scheduler.DefaultStaleQueued / 2)
	e.tickAll(s)
	if ids, _ := e.jobs(); len(ids) != 1 {
		t.Fatalf("%d jobs within the grace period, want 1", len(ids))
	}

	e.clock.Add(scheduler.DefaultStaleQueued)
	e.tickAll(s)
	ids, jobs := e.jobs()
	if len(ids) != 2 || ids[1] != lost.ID || jobs[1].RunId != lost.ID || jobs[1].Trigger != syncv1.Trigger_TRIGGER_MANUAL {
		t.Fatalf("jobs %v %v, want the lost run %s published with its id", ids, jobs, lost.ID)
	}

	// Both runs are still queued, but their jobs wait in the stream: once
	// the dedup window is over, another pass must not add copies.
	e.forgetDedupIDs()
	e.clock.Add(time.Minute)
	e.tickAll(s)
	if ids, _ := e.jobs(); len(ids) != 2 {
		t.Fatalf("%d jobs after another sweep, want still 2: %v", len(ids), ids)
	}
}

// TestTakenQueuedRunIsNotPublishedAgain: a run still queued because the
// reconcilers have not applied its RunStarted yet, although a fetcher took
// its job and began fetching, keeps its one job; a queued run no fetcher
// began is published again beside it.
func TestTakenQueuedRunIsNotPublishedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A short dedup window: JetStream would not hide a second copy.
	s := e.scheduler(bus.Options{Duplicates: 100 * time.Millisecond})
	ten := e.tenant(24 * time.Hour)
	e.intoNewSlot(ten.ID, 24*time.Hour)
	ctx := context.Background()
	e.tickAll(s) // the tenant's first scheduled run
	if ids, _ := e.jobs(); len(ids) != 1 {
		t.Fatalf("%d jobs after the first pass, want 1", len(ids))
	}

	newRun := func() store.Run {
		r, err := e.st.CreateRun(ctx, store.NewRun{TenantID: ten.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	taken, lost := newRun(), newRun()
	// A fetcher took the job of taken (now acknowledged or in progress,
	// either way not waiting in the stream) and began fetching.
	if n, err := e.st.BeginFetch(ctx, ten.ID, taken.ID); err != nil || n != 1 {
		t.Fatalf("BeginFetch = %d, %v", n, err)
	}
	e.forgetDedupIDs()
	e.clock.Add(2 * scheduler.DefaultStaleQueued)
	e.tickAll(s)
	ids, _ := e.jobs()
	if len(ids) != 2 || ids[1] != lost.ID {
		t.Fatalf("jobs %v after the sweep, want the first run's and %s (not %s, which a fetcher began)", ids, lost.ID, taken.ID)
	}
}

func TestStartAndStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.scheduler(bus.Options{})
	ten := e.tenant(time.Hour)
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Start makes a first pass at once.
	devenv.WaitFor(t, 20*time.Second, "a run scheduled after Start", func() bool { return len(e.runs(ten.ID)) > 0 })
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestSlot(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 10, 9, 17, 23, 500, time.UTC)
	offsets := map[time.Duration]bool{}
	for _, tenant := range []string{"a", "b", "c", "0198f3c4-1111-7000-8000-000000000001", "0198f3c4-1111-7000-8000-000000000002"} {
		for _, iv := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 90 * time.Minute} {
			s := scheduler.Slot(tenant, iv, now)
			if s.After(now) || !s.After(now.Add(-iv)) {
				t.Errorf("Slot(%s, %v) = %s, not in (now-interval, now]", tenant, iv, s)
			}
			if s.Nanosecond() != 0 {
				t.Errorf("Slot(%s, %v) = %s, not whole seconds", tenant, iv, s)
			}
			if got := scheduler.Slot(tenant, iv, s); !got.Equal(s) {
				t.Errorf("a slot boundary is its own slot: Slot(%s) = %s", s, got)
			}
			if got := scheduler.Slot(tenant, iv, s.Add(-time.Second)); !got.Equal(s.Add(-iv)) {
				t.Errorf("just before %s the slot is %s, want %s", s, got, s.Add(-iv))
			}
			if got := scheduler.Slot(tenant, iv, now.Add(iv)); !got.Equal(s.Add(iv)) {
				t.Errorf("one interval later the slot is %s, want %s", got, s.Add(iv))
			}
			if iv == 24*time.Hour {
				offsets[now.Sub(s)] = true
			}
		}
	}
	if len(offsets) < 4 {
		t.Errorf("daily slots of 5 tenants fall on %d distinct times; they should be spread", len(offsets))
	}
}

// take plays a replica of the consumer: it takes n messages from the
// stream's work queue and acknowledges them.
func (e *env) take(stream, consumer string, n int) {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.js.Consumer(ctx, stream, consumer)
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			e.t.Fatal(err)
		}
		got++
	}
	if got != n {
		e.t.Fatalf("took %d messages from %s, want %d (%v)", got, stream, n, batch.Error())
	}
}

// TestStuckRunIsGivenUp: a run a fetcher began and that then stopped
// moving is failed with a message saying so, but only once it has gone
// StuckAfter without progress and nothing of its tenant is in flight.
func TestStuckRunIsGivenUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.scheduler(bus.Options{})
	ten := e.tenant(24 * time.Hour)
	e.intoNewSlot(ten.ID, 24*time.Hour)
	ctx := context.Background()
	e.tickAll(s) // the tenant's first scheduled run
	runs := e.runs(ten.ID)
	if len(runs) != 1 {
		t.Fatalf("%d runs after the first pass, want 1", len(runs))
	}
	run := runs[0]
	// A fetcher took the job, began, and its RunStarted was applied; then
	// its process died, its job ran out of deliveries, and its lease
	// expired.
	e.take(bus.StreamJobs, bus.ConsumerFetchers, 1)
	if _, err := e.st.BeginFetch(ctx, ten.ID, run.ID); err != nil {
		t.Fatal(err)
	}
	ref := store.PageRef{TenantID: ten.ID, RunID: run.ID, RunSeq: run.Seq}
	if err := e.st.MarkRunStarted(ctx, ref, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	status := func() store.Run {
		t.Helper()
		r, err := e.st.GetRun(ctx, ten.ID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	e.clock.Add(scheduler.DefaultStuckAfter / 2)
	e.tickAll(s)
	if r := status(); r.Status != store.StatusRunning {
		t.Fatalf("run is %s within StuckAfter, want running", r.Status)
	}

	// A page of it still waits for the reconcilers: not stuck, only slow.
	b, err := bus.ConnectWith(ctx, e.nats, bus.Options{}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.PublishEvent(ctx, &syncv1.SyncEvent{TenantId: ten.ID, RunId: run.ID, RunSeq: run.Seq, Page: 0,
		Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(scheduler.DefaultStuckAfter)
	e.tickAll(s)
	if r := status(); r.Status != store.StatusRunning {
		t.Fatalf("run is %s with a page in flight, want running", r.Status)
	}

	// The page is dead-lettered (gone from the work queue, never applied).
	// The ack's reply can reach the test before the stream's count of the
	// tenant's subject drops: under load make test once saw the page still
	// in flight at the next pass. The pass is about a tenant with nothing
	// in flight, so it waits for the count that says so.
	e.take(bus.StreamEvents, bus.ConsumerReconcilers, 1)
	devenv.WaitFor(t, 10*time.Second, "the tenant's job and page gone from the work queues", func() bool {
		jobs, events, err := b.TenantInFlight(ctx, ten.ID)
		if err != nil {
			t.Fatal(err)
		}
		return jobs == 0 && events == 0
	})
	e.tickAll(s)
	r := status()
	if r.Status != store.StatusFailed || !strings.Contains(r.Error, "stopped making progress") ||
		!strings.Contains(r.Error, "no page of it was applied") || r.FinishedAt == nil {
		t.Fatalf("run is %s (%q), finished %v; want failed as stuck", r.Status, r.Error, r.FinishedAt)
	}
	// Another pass changes nothing.
	e.clock.Add(time.Hour)
	e.tickAll(s)
	if again := status(); again.Error != r.Error || !again.FinishedAt.Equal(*r.FinishedAt) {
		t.Fatalf("a later pass changed the failed run: %q at %v", again.Error, again.FinishedAt)
	}
}

// TestManualRunCoversTheSlot: a tenant whose admin synced by hand in the
// current slot gets no scheduled run for it, unless that run failed; the
// next slot is scheduled as usual.
func TestManualRunCoversTheSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.scheduler(bus.Options{})
	ten := e.tenant(24 * time.Hour)
	ctx := context.Background()
	// The admin connected the tenant and pressed sync before any pass.
	manual, created, err := e.st.QueueManualRun(ctx, ten.ID)
	if err != nil || !created {
		t.Fatalf("QueueManualRun = %v, %v", created, err)
	}
	e.tickAll(s)
	if runs := e.runs(ten.ID); len(runs) != 1 || runs[0].ID != manual.ID {
		t.Fatalf("runs after a pass with a manual run in the slot: %d, want only the manual one", len(runs))
	}
	if ids, _ := e.jobs(); len(ids) != 0 {
		t.Fatalf("the scheduler published %v, want nothing", ids)
	}

	// The manual run failed: the slot is not covered any more.
	ref := store.PageRef{TenantID: ten.ID, RunID: manual.ID, RunSeq: manual.Seq}
	if err := e.st.MarkRunFailed(ctx, ref, "wrong secret", store.GraphStats{}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.tickAll(s)
	runs := e.runs(ten.ID)
	if len(runs) != 2 || runs[0].Trigger != store.TriggerSchedule || runs[0].Slot == nil {
		t.Fatalf("runs after the manual run failed: %+v, want a scheduled run beside it", runs)
	}
	slot := *runs[0].Slot

	// A day later the next slot is due, whatever ran in the one before.
	e.clock.Add(24 * time.Hour)
	e.tickAll(s)
	runs = e.runs(ten.ID)
	if len(runs) != 3 || runs[0].Slot == nil || !runs[0].Slot.Equal(slot.Add(24*time.Hour)) {
		t.Fatalf("runs a day later: %+v, want the next slot's run", runs)
	}
}

// setSchedule changes a tenant's schedule setting.
func (e *env) setSchedule(tenantID string, sch plan.Schedule) {
	e.t.Helper()
	_, _, err := e.st.ChangeSettings(context.Background(), tenantID, func(cur plan.Settings) (plan.Settings, error) {
		cur.Schedule = sch
		return cur, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// walk moves the clock by step until it has moved by d, with a pass of s
// after every step.
func (e *env) walk(s *scheduler.Scheduler, d, step time.Duration) {
	e.t.Helper()
	for moved := time.Duration(0); moved < d; moved += step {
		e.clock.Add(step)
		e.tickAll(s)
	}
}

// scheduledSlots returns the slots of the tenant's scheduled runs, oldest
// first.
func (e *env) scheduledSlots(tenantID string) []time.Time {
	e.t.Helper()
	var slots []time.Time
	runs := e.runs(tenantID)
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].Trigger == store.TriggerSchedule && runs[i].Slot != nil {
			slots = append(slots, runs[i].Slot.UTC())
		}
	}
	return slots
}

// TestDailyScheduleAcrossClockChanges: a daily schedule runs once on each
// local day, the days the clocks change included: a time a spring-forward
// skips runs at the end of the gap, a time a fall-back repeats runs once.
// The scheduler's clock walks two days past each change of two zones, and
// past the same days in a zone without changes.
func TestDailyScheduleAcrossClockChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, zone, at string
		from           string   // UTC, noon before the change
		want           []string // the slots scheduled over two days, UTC
	}{
		// 01:30 does not exist on 29 March; 02:00 BST is 01:00 UTC.
		{"London spring", "Europe/London", "01:30", "2026-03-28T12:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		// 01:30 happens twice on 25 October: first at 01:30 BST.
		{"London autumn", "Europe/London", "01:30", "2026-10-24T12:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		// 02:30 does not exist on 8 March; 03:00 EDT is 07:00 UTC.
		{"New York spring", "America/New_York", "02:30", "2026-03-07T12:00:00Z",
			[]string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		// 01:30 happens twice on 1 November: first at 01:30 EDT.
		{"New York autumn", "America/New_York", "01:30", "2026-10-31T12:00:00Z",
			[]string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"Tokyo", "Asia/Tokyo", "01:30", "2026-03-28T12:00:00Z",
			[]string{"2026-03-27T16:30:00Z", "2026-03-28T16:30:00Z", "2026-03-29T16:30:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			from, err := time.Parse(time.RFC3339, tc.from)
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Add(from.Sub(e.clock.Now()))
			s := e.scheduler(bus.Options{})
			ten := e.tenant(24 * time.Hour)
			e.setSchedule(ten.ID, plan.Schedule{Kind: plan.ScheduleDaily, At: tc.at, TimeZone: tc.zone})
			// A tenant connected a moment ago is due at once: its current
			// slot is the day's time, before now.
			e.tickAll(s)
			e.walk(s, 48*time.Hour, 15*time.Minute)

			var wantIDs []string
			for _, w := range tc.want {
				wantIDs = append(wantIDs, scheduler.SlotMsgID(ten.ID, mustTime(t, w)))
			}
			got := e.scheduledSlots(ten.ID)
			var gotS []string
			for _, g := range got {
				gotS = append(gotS, g.Format(time.RFC3339))
			}
			if !slices.Equal(gotS, tc.want) {
				t.Fatalf("scheduled slots %v, want %v", gotS, tc.want)
			}
			if ids, _ := e.jobs(); !slices.Equal(ids, wantIDs) {
				t.Fatalf("published %v, want %v", ids, wantIDs)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestManualScheduleIsNeverScheduled: a tenant on the manual schedule
// gets no scheduled run however long the clock runs, an admin's sync runs
// as usual, and a schedule given back later is followed from its next
// pass.
func TestManualScheduleIsNeverScheduled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.scheduler(bus.Options{})
	ten := e.tenant(time.Hour)
	e.setSchedule(ten.ID, plan.Schedule{Kind: plan.ScheduleManual})
	e.tickAll(s)
	e.walk(s, 6*time.Hour, 30*time.Minute)
	if runs := e.runs(ten.ID); len(runs) != 0 {
		t.Fatalf("a manual tenant has %d runs, want none", len(runs))
	}
	if _, created, err := e.st.QueueManualRun(context.Background(), ten.ID); err != nil || !created {
		t.Fatalf("QueueManualRun = %v, %v", created, err)
	}
	e.tickAll(s)
	if runs := e.runs(ten.ID); len(runs) != 1 || runs[0].Trigger == store.TriggerSchedule {
		t.Fatalf("runs after an admin's sync: %+v, want only that one", runs)
	}

	// Every hour again: the slot the admin's run was created in is
	// covered; the next is scheduled.
	e.setSchedule(ten.ID, plan.Schedule{Kind: plan.ScheduleInterval, EveryMinutes: 60})
	e.tickAll(s)
	if got := e.scheduledSlots(ten.ID); len(got) != 0 {
		t.Fatalf("scheduled %v in the slot of the admin's run, want nothing", got)
	}
	e.walk(s, time.Hour, 30*time.Minute)
	slot := scheduler.Slot(ten.ID, time.Hour, e.clock.Now())
	if got := e.scheduledSlots(ten.ID); len(got) != 1 || !got[0].Equal(slot) {
		t.Fatalf("scheduled %v an hour later, want the slot %s", got, slot)
	}
}
