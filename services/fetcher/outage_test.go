package fetcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestDatabaseOutageDelaysJobsWithoutSpendingDeliveries takes Postgres
// away from a fetcher for far longer than its jobs' delivery budget
// (compressed here: 2 deliveries, milliseconds apart), then gives it
// back: the run is fetched, and the job was neither failed nor
// dead-lettered meanwhile.
func TestDatabaseOutageDelaysJobsWithoutSpendingDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ctx := t.Context()
	proxy, proxyURL := devenv.NewPGProxy(t, e.dbURL)
	box, err := secret.NewBox(storetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, proxyURL, box, e.log, store.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	rec := e.record()
	run := e.queueRun()

	proxy.SetDown(true)
	b := e.connectWith(bus.Options{JobsMaxDeliver: 2, TransientFor: time.Minute, PollWait: time.Second})
	f, err := New(Config{ID: "fetcher-outage", Graph: e.graphConfig(), LeaseTTL: 3 * time.Second},
		Deps{Bus: b, Store: st, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.WithoutCancel(ctx)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = f.Stop(sctx)
	})

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	// The outage lasts until the fetcher has tried the database four times
	// as often as the job's two deliveries would have.
	devenv.WaitFor(t, 30*time.Second, "connection attempts during the outage", func() bool {
		info, err := dlq.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs > 0 || len(rec.of(run.ID)) > 0 {
			t.Fatalf("during the outage: %d dead letters, events %v", info.State.Msgs, rec.of(run.ID))
		}
		return proxy.Refused() >= 8
	})
	proxy.SetDown(false)
	evs := rec.waitEnd(t, run.ID)
	if last := evs[len(evs)-1]; last.GetFetched() == nil {
		t.Fatalf("run ended with %v after the outage", last)
	}
}

// TestPagesLargerThanAnEventAreSplit: with events limited to a few KiB
// (NATS takes 1 MiB by default; a page of groups with long membership
// rules can pass it), every Graph page that would not fit goes out as
// several pages, numbered without gaps, member lists keeping their parts
// in order, and the run still describes the directory exactly.
func TestPagesLargerThanAnEventAreSplit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.record()
	run := e.queueRun()
	const limit = 600
	e.startFetcher("fetcher-small", func(c *Config) { c.MaxEventBytes = limit })
	evs := rec.waitEnd(t, run.ID)
	e.splitPages = true
	checkRun(t, e, run, evs)
	usersPages := 0
	for _, ev := range evs {
		// Data pages are split to fit; control events are not pages (a
		// RunFetched carries two delta links of a few hundred bytes, far
		// below NATS's 1 MiB).
		if n := proto.Size(ev); n > limit && ev.GetPage() >= 0 {
			t.Errorf("page %d is %d bytes, over the %d limit", ev.GetPage(), n, limit)
		}
		if ev.GetUsers() != nil {
			usersPages++
		}
	}
	graphPages := (len(e.dir.Users()) + pageSize - 1) / pageSize
	if usersPages <= graphPages {
		t.Fatalf("%d users pages for %d Graph pages: the limit did not split any", usersPages, graphPages)
	}
}

// TestGroupMemberChangesLargerThanAnEventAreSplit: Graph may answer a
// groups delta round with one group whose members@delta fill the page
// (delta-query-groups.md). When that group's changes do not fit in one
// event, they go out over several pages instead of failing the run, and
// together the pages carry every change once.
func TestGroupMemberChangesLargerThanAnEventAreSplit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.recordAndApply()
	const limit = 2000 // the simulator sends up to 100 members@delta entries with a group
	e.startFetcher("fetcher-small", func(c *Config) { c.MaxEventBytes = limit })
	full := e.queueRun()
	if last := rec.waitEnd(t, full.ID); last[len(last)-1].GetFetched() == nil {
		t.Fatalf("the full run ended with %v", last[len(last)-1])
	}
	links := e.savedLinks(store.DeltaLinks{})

	var group string
	for _, g := range e.dir.Groups() {
		if !slices.Contains(g.GroupTypes, "DynamicMembership") && !slices.Contains(g.GroupTypes, "Unified") {
			group = g.ID
			break
		}
	}
	if group == "" {
		t.Fatal("the directory has no assigned security group")
	}
	// 90 people join the company and the group: about 3,800 bytes of
	// member changes.
	var joined []string
	for i := range 90 {
		u := e.dir.AddUser(graphsim.User{GivenName: "Joiner", Surname: fmt.Sprint(i), DisplayName: fmt.Sprint("Joiner ", i),
			AccountEnabled: true})
		if err := e.dir.AddMember(group, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
		joined = append(joined, u.ID)
	}
	d := e.queueRunOf(store.KindDelta)
	evs := rec.waitEnd(t, d.ID)
	if last := evs[len(evs)-1]; last.GetFetched() == nil {
		t.Fatalf("the delta run ended with %v", last)
	}
	var added []string
	pages := 0
	for _, ev := range evs {
		if n := proto.Size(ev); n > limit && ev.GetPage() >= 0 {
			t.Errorf("page %d is %d bytes, over the %d limit", ev.GetPage(), n, limit)
		}
		for _, md := range ev.GetGroupsDelta().GetMembers() {
			if md.GetGroupId() != group {
				continue
			}
			pages++
			for _, m := range md.GetAdded() {
				added = append(added, m.GetId())
			}
		}
	}
	slices.Sort(added)
	slices.Sort(joined)
	if !slices.Equal(added, joined) {
		t.Fatalf("the round carried %d members added to %s, want the %d who joined", len(added), group, len(joined))
	}
	if pages < 2 {
		t.Fatalf("the group's changes took %d page(s): the limit split nothing", pages)
	}
	// The reconciler took the pages and applied the run's plan.
	e.savedLinks(links)
}

// TestObjectLargerThanAnEventFailsTheRun: an object that cannot travel
// alone fails the run with the reason, instead of a publish error retried
// until the job's deliveries run out.
func TestObjectLargerThanAnEventFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-tiny", func(c *Config) { c.MaxEventBytes = 64 })
	evs := rec.waitEnd(t, run.ID)
	if f := evs[len(evs)-1].GetFailed(); f == nil || !strings.Contains(f.GetError(), "larger than the 64 bytes") {
		t.Fatalf("run with a 64-byte limit ended with %v", evs[len(evs)-1])
	}
}
