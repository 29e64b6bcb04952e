package fetcher

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
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
	waitFor(t, 30*time.Second, "connection attempts during the outage", func() bool {
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
