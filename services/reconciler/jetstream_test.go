package reconciler_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/services/reconciler"
)

// TestEventsThroughJetStream runs the reconciler as a service: two
// replicas consume the events of a run published backwards through a real
// JetStream, and a malformed event is dead-lettered, not retried.
func TestEventsThroughJetStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	natsURL := devenv.NATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)

	var replicas []*reconciler.Reconciler
	for range 2 {
		b, err := bus.Connect(ctx, natsURL, log)
		must(t, err)
		t.Cleanup(b.Close)
		r, err := reconciler.New(reconciler.Config{Concurrency: 3, Clock: clock}, reconciler.Deps{Bus: b, Store: e.st, Logger: log})
		must(t, err)
		if r.Ready() == nil {
			t.Fatal("a reconciler not started says it is ready")
		}
		must(t, r.Start(ctx))
		must(t, r.Ready())
		replicas = append(replicas, r)
	}
	pub, err := bus.Connect(ctx, natsURL, log)
	must(t, err)
	t.Cleanup(pub.Close)

	const seats = 4
	tenant := e.tenant(seats)
	run := e.newRun(tenant)
	d := testDirectory()
	evs := events(d, tenant, run.ID, run.Seq, 3)
	slices.Reverse(evs)
	for _, ev := range evs {
		must(t, pub.PublishEvent(ctx, ev))
	}
	bad := proto.CloneOf(evs[1])
	bad.RunSeq = 0
	bad.Page = 9999 // its own message id
	must(t, pub.PublishEvent(ctx, bad))

	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := e.st.GetRun(ctx, tenant, run.ID)
		must(t, err)
		if got.Terminal() {
			if got.Status != store.StatusSucceeded {
				t.Fatalf("run %s: %s", got.Status, got.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run still %s after 30 s (%d of %v pages)", got.Status, got.PagesApplied, got.PagesTotal)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, want := e.users(tenant), expectedUsers(d, firstSeats(d, seats)); !reflect.DeepEqual(got, want) {
		t.Fatalf("app users:\n%s\nwant:\n%s", describeUsers(got), describeUsers(want))
	}
	if got, want := e.members(tenant), expectedMembers(d); !reflect.DeepEqual(got, want) {
		t.Fatalf("memberships:\n%v\nwant:\n%v", got, want)
	}

	nc, err := nats.Connect(natsURL)
	must(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(t, err)
	dlq, err := js.Stream(ctx, bus.StreamDLQ)
	must(t, err)
	subject := bus.SubjectDLQEvents + tenant
	for {
		info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(subject))
		must(t, err)
		if n := info.State.Subjects[subject]; n == 1 {
			break
		} else if n > 1 || time.Now().After(deadline) {
			t.Fatalf("%d dead letters for the tenant, want 1", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg, err := dlq.GetLastMsgForSubject(ctx, subject)
	must(t, err)
	if reason := msg.Header.Get(bus.HeaderDLQReason); !reflect.DeepEqual(msg.Data, mustMarshal(t, bad)) || reason == "" {
		t.Fatalf("dead letter %q is not the bad event", reason)
	}

	for _, r := range replicas {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		must(t, r.Stop(sctx))
		cancel()
		if r.Ready() == nil {
			t.Fatal("a stopped reconciler says it is ready")
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := reconciler.New(reconciler.Config{Concurrency: -1}, reconciler.Deps{})
	if err == nil || !strings.Contains(err.Error(), "Concurrency") {
		t.Errorf("got %v, want an error naming Concurrency", err)
	}
	if _, err := reconciler.New(reconciler.Config{}, reconciler.Deps{}); err == nil || !strings.Contains(err.Error(), "store") {
		t.Errorf("got %v, want an error about the missing store", err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	must(t, err)
	return b
}
