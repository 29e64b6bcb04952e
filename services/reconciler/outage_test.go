package reconciler_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/reconciler"
)

// TestDatabaseOutageDelaysRunsWithoutSpendingDeliveries takes Postgres
// away from a running reconciler for far longer than its events' delivery
// budget (compressed here: 3 deliveries, a few milliseconds apart), then
// gives it back: the run finishes, and nothing is dead-lettered.
func TestDatabaseOutageDelaysRunsWithoutSpendingDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	proxy, proxyURL := devenv.NewPGProxy(t, e.url)
	box, err := secret.NewBox(storetest.Key)
	must(t, err)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	st, err := store.Open(ctx, proxyURL, box, log, store.WithoutMigrate(), store.WithClock(clock))
	must(t, err)
	t.Cleanup(st.Close)

	natsURL := devenv.NATS(t)
	b, err := bus.ConnectWith(ctx, natsURL, bus.Options{EventsMaxDeliver: 3, RetryBase: 2 * time.Millisecond,
		RetryMax: 20 * time.Millisecond, TransientFor: time.Minute, PollWait: time.Second}, log)
	must(t, err)
	t.Cleanup(b.Close)
	r, err := reconciler.New(reconciler.Config{Concurrency: 2, Clock: clock}, reconciler.Deps{Bus: b, Store: st, Logger: log})
	must(t, err)

	tenant := e.tenant(5)
	run := e.newRun(tenant)
	proxy.SetDown(true)
	must(t, r.Start(ctx))
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		must(t, r.Stop(sctx))
	}()
	evs := events(testDirectory(), tenant, run.ID, run.Seq, 5)
	for _, ev := range evs {
		must(t, b.PublishEvent(ctx, ev))
	}
	nc, err := nats.Connect(natsURL)
	must(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(t, err)
	dlq, err := js.Stream(ctx, bus.StreamDLQ)
	must(t, err)
	deadLetters := func() uint64 {
		info, err := dlq.Info(ctx)
		must(t, err)
		return info.State.Msgs
	}

	// The outage lasts until the reconciler has tried the database four
	// times as often as every event's three deliveries would have.
	devenv.WaitFor(t, 30*time.Second, "connection attempts four times the events' delivery budget", func() bool {
		if n := deadLetters(); n > 0 {
			t.Fatalf("%d events dead-lettered during the outage (%d connection attempts)", n, proxy.Refused())
		}
		return proxy.Refused() >= int64(4*3*len(evs))
	})
	proxy.SetDown(false)

	if got := e.waitOver(tenant, run.ID, 30*time.Second); got.Status != store.StatusSucceeded {
		t.Fatalf("run %s after the outage: %s", got.Status, got.Error)
	}
	if n := deadLetters(); n != 0 {
		t.Fatalf("%d dead letters after an outage", n)
	}
}

// TestStrandedEventFailsItsRun: a reconciler takes a page on its last
// allowed delivery and dies, and not for the first time: the bus
// dead-letters the page, and the run, which cannot finish without it,
// fails at once with the reason instead of waiting to be given up.
func TestStrandedEventFailsItsRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	natsURL := devenv.NATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	b, err := bus.ConnectWith(ctx, natsURL, bus.Options{EventsMaxDeliver: 1, EventsAckWait: 300 * time.Millisecond,
		PollWait: time.Second}, log)
	must(t, err)
	t.Cleanup(b.Close)

	tenant := e.tenant(5)
	run := e.newRun(tenant)
	evs := events(testDirectory(), tenant, run.ID, run.Seq, 5)
	e.apply(evs[:1]) // the run started
	data, err := proto.Marshal(evs[1])
	must(t, err)
	nc, err := nats.Connect(natsURL)
	must(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(t, err)
	msg := &nats.Msg{Subject: bus.SubjectEvents + tenant, Data: data, Header: nats.Header{}}
	msg.Header.Set(bus.HeaderStrandings, strconv.Itoa(bus.DefaultMaxStrandings))
	_, err = js.PublishMsg(ctx, msg)
	must(t, err)

	// A reconciler takes the page and dies.
	dnc, err := nats.Connect(natsURL)
	must(t, err)
	djs, err := jetstream.New(dnc)
	must(t, err)
	cons, err := djs.Consumer(ctx, bus.StreamEvents, bus.ConsumerReconcilers)
	must(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	must(t, err)
	if m := <-batch.Messages(); m == nil {
		t.Fatal("the doomed reconciler got no page")
	}
	dnc.Close()

	r, err := reconciler.New(reconciler.Config{Clock: clock}, reconciler.Deps{Bus: b, Store: e.st, Logger: log})
	must(t, err)
	must(t, r.Start(ctx))
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		must(t, r.Stop(sctx))
	}()
	if got := e.waitOver(tenant, run.ID, 20*time.Second); got.Status != store.StatusFailed ||
		!strings.Contains(got.Error, "users page 0 could not be applied") || !strings.Contains(got.Error, "never answered") {
		t.Fatalf("run %s: %q; want failed, naming the stranded page", got.Status, got.Error)
	}
	// The run fails (OnDeadLetter) before the bus dead-letters and deletes
	// the stranded original: wait for that, then nothing stays in flight.
	devenv.WaitFor(t, 10*time.Second, "no message of the tenant in flight", func() bool {
		jobs, events, err := b.TenantInFlight(ctx, tenant)
		must(t, err)
		return jobs+events == 0
	})
}
