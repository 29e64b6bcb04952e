package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// servers returns the NATS servers every behaviour is checked against: the
// embedded current one, and the system's nats-server (Debian ships 2.9)
// when it is installed, since production may run that one.
func servers(t *testing.T) map[string]func(t *testing.T) string {
	out := map[string]func(*testing.T) string{"embedded": func(t *testing.T) string { return devenv.NATS(t) }}
	if bin, err := exec.LookPath("nats-server"); err == nil {
		out["system"] = func(t *testing.T) string { return systemNATS(t, bin) }
	} else if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		out["system"] = func(t *testing.T) string { return systemNATS(t, "/usr/sbin/nats-server") }
	}
	return out
}

// systemNATS runs the nats-server binary at bin with JetStream for one test.
func systemNATS(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	devenv.WaitFor(t, 15*time.Second, "system nats-server accepts connections", func() bool {
		nc, err := nats.Connect(url)
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		_, err = js.AccountInfo(context.Background())
		return err == nil
	})
	return url
}

// forEachServer runs f as a parallel subtest per server.
func forEachServer(t *testing.T, f func(t *testing.T, url string)) {
	t.Parallel()
	for name, start := range servers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, start(t))
		})
	}
}

// nextJob starts a consumer on a connection of its own, as another
// replica would, and returns the run id of the first job it is given, or
// "" if none comes within the wait. The replica stops before it returns.
func nextJob(t *testing.T, url string, opts bus.Options, within time.Duration) string {
	t.Helper()
	got := make(chan string, 1)
	other := connect(t, url, opts)
	defer other.Close()
	c, err := other.ConsumeJobs(context.Background(), bus.ConsumeOptions{}, func(_ context.Context, j *syncv1.SyncJob) error {
		select {
		case got <- j.RunId:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	select {
	case id := <-got:
		return id
	case <-time.After(within):
		return ""
	}
}

// stop stops c, giving its handlers time to finish.
func stop(t *testing.T, c bus.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Error(err)
	}
}

// stopNow stops c with no time to wait: its handlers in flight are
// cancelled and their messages handed back. A handler that gives up by
// itself once the consumer stops (one waiting out an outage) may be done
// before Stop looks, which makes Stop's answer nil.
func stopNow(t *testing.T, c bus.Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with no time: %v, want context.Canceled or nil", err)
	}
}

// fast are options that make redelivery observable in a test.
var fast = bus.Options{RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, PollWait: 2 * time.Second}

func connect(t *testing.T, url string, opts bus.Options) *bus.Bus {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.ConnectWith(ctx, url, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// raw is a plain JetStream client for looking behind the bus's back.
func raw(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newJob(tenant string) *syncv1.SyncJob {
	return &syncv1.SyncJob{
		TenantId: tenant, RunId: uuid.NewString(), RunSeq: 7,
		Kind: syncv1.JobKind_JOB_KIND_FULL, Trigger: syncv1.Trigger_TRIGGER_MANUAL,
		RequestedAt: timestamppb.New(time.Unix(1700000000, 0)),
	}
}

// streamMsgs returns the number of messages stored in a stream.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// dlq returns the dead letters stored so far, oldest first.
func dlq(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// waitIdle waits until a consumer has nothing pending or unacknowledged.
func waitIdle(t *testing.T, b *bus.Bus, consumer string) {
	t.Helper()
	devenv.WaitFor(t, 20*time.Second, consumer+" is idle", func() bool { return lagOf(t, b, consumer).Total() == 0 })
}

// lagOf is the named consumer's lag now.
func lagOf(t *testing.T, b *bus.Bus, consumer string) bus.ConsumerLag {
	t.Helper()
	lags, err := b.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lags {
		if l.Consumer == consumer {
			return l
		}
	}
	t.Fatalf("no lag for %s in %+v", consumer, lags)
	return bus.ConsumerLag{}
}

func TestRoundTrip(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		b := connect(t, url, fast)
		tenant := uuid.NewString()
		job := newJob(tenant)
		if err := b.PublishJob(ctx, job); err != nil {
			t.Fatal(err)
		}
		events := []*syncv1.SyncEvent{
			{TenantId: tenant, RunId: job.RunId, RunSeq: 7, Page: -1, Body: &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{Fetcher: "f1"}}},
			{TenantId: tenant, RunId: job.RunId, RunSeq: 7, Page: 0, Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{
				Users: []*syncv1.User{{Id: "u1", DisplayName: "Ada", AccountEnabled: true}}}}},
			{TenantId: tenant, RunId: job.RunId, RunSeq: 7, Page: -1, Body: &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{Pages: 1}}},
		}
		for _, ev := range events {
			if err := b.PublishEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}

		jobs := make(chan *syncv1.SyncJob, 10)
		cj, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(_ context.Context, j *syncv1.SyncJob) error {
			jobs <- j
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, cj)
		evs := make(chan *syncv1.SyncEvent, 10)
		ce, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{Concurrency: 1}, func(_ context.Context, e *syncv1.SyncEvent) error {
			evs <- e
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, ce)

		select {
		case got := <-jobs:
			if !proto.Equal(got, job) {
				t.Fatalf("got job %v, want %v", got, job)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no job consumed")
		}
		for i := range events {
			select {
			case got := <-evs:
				// One consumer with concurrency 1 sees the stream's order.
				if !proto.Equal(got, events[i]) {
					t.Fatalf("event %d: got %v, want %v", i, got, events[i])
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("event %d not consumed", i)
			}
		}
		waitIdle(t, b, bus.ConsumerFetchers)
		waitIdle(t, b, bus.ConsumerReconcilers)
		js := raw(t, url)
		// Work queues drop what was acknowledged.
		if n := streamMsgs(t, js, bus.StreamJobs) + streamMsgs(t, js, bus.StreamEvents); n != 0 {
			t.Fatalf("%d messages left in the work queues", n)
		}
	})
}

func TestDuplicatesAreDropped(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		b := connect(t, url, fast)
		js := raw(t, url)
		tenant := uuid.NewString()
		job := newJob(tenant)
		for range 3 {
			if err := b.PublishJob(ctx, job); err != nil {
				t.Fatal(err)
			}
		}
		// Two scheduler replicas: different runs, same slot id.
		for range 2 {
			if err := b.PublishJobWithID(ctx, newJob(tenant), "sched/"+tenant+"/1700000000"); err != nil {
				t.Fatal(err)
			}
		}
		page := &syncv1.SyncEvent{TenantId: tenant, RunId: job.RunId, Page: 3,
			Body: &syncv1.SyncEvent_Groups{Groups: &syncv1.GroupsPage{}}}
		// A page, and each attempt's RunFetched, twice: the repeats go,
		// the second attempt's RunFetched stays.
		fetched := func(first int32) *syncv1.SyncEvent {
			return &syncv1.SyncEvent{TenantId: tenant, RunId: job.RunId, Page: -1,
				Body: &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{FirstPage: first, Pages: 4}}}
		}
		for range 2 {
			for _, ev := range []*syncv1.SyncEvent{page, fetched(0), fetched(syncv1.AttemptPageSpan)} {
				if err := b.PublishEvent(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := streamMsgs(t, js, bus.StreamJobs); n != 2 {
			t.Fatalf("SYNC_JOBS holds %d messages, want 2", n)
		}
		if n := streamMsgs(t, js, bus.StreamEvents); n != 3 {
			t.Fatalf("SYNC_EVENTS holds %d messages, want 3", n)
		}
		lags, err := b.Lag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{bus.ConsumerFetchers: 2, bus.ConsumerReconcilers: 3}
		for _, l := range lags {
			if l.Pending != want[l.Consumer] || l.Total() != want[l.Consumer] {
				t.Errorf("lag of %s = %+v, want %d pending", l.Consumer, l, want[l.Consumer])
			}
			delete(want, l.Consumer)
		}
		if len(want) != 0 {
			t.Errorf("Lag lacks %v", want)
		}
	})
}

func TestPublishRejectsWhatCannotBeRouted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := connect(t, devenv.NATS(t), fast)
	cases := map[string]func() error{
		"job without tenant":  func() error { return b.PublishJob(ctx, &syncv1.SyncJob{RunId: "r"}) },
		"job with dot tenant": func() error { return b.PublishJob(ctx, &syncv1.SyncJob{TenantId: "a.b", RunId: "r"}) },
		"job without run":     func() error { return b.PublishJob(ctx, &syncv1.SyncJob{TenantId: "t"}) },
		"job with empty id":   func() error { return b.PublishJobWithID(ctx, newJob("t"), "") },
		"event without body":  func() error { return b.PublishEvent(ctx, &syncv1.SyncEvent{TenantId: "t", RunId: "r"}) },
		"data event page -1": func() error {
			return b.PublishEvent(ctx, &syncv1.SyncEvent{TenantId: "t", RunId: "r", Page: -1,
				Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}})
		},
		"event with wildcard tenant": func() error {
			return b.PublishEvent(ctx, &syncv1.SyncEvent{TenantId: "*", RunId: "r",
				Body: &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{}}})
		},
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, bus.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	lags, err := b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lags {
		if l.Total() != 0 {
			t.Errorf("%s has %d messages after rejected publishes", l.Consumer, l.Total())
		}
	}
}

func TestNewJob(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, delta := range []bool{false, true} {
		for _, scheduled := range []bool{false, true} {
			want := &syncv1.SyncJob{TenantId: "t", RunId: "r", RunSeq: 7, Kind: syncv1.JobKind_JOB_KIND_FULL,
				Trigger: syncv1.Trigger_TRIGGER_MANUAL, RequestedAt: timestamppb.New(at)}
			if delta {
				want.Kind = syncv1.JobKind_JOB_KIND_DELTA
			}
			if scheduled {
				want.Trigger = syncv1.Trigger_TRIGGER_SCHEDULE
			}
			if got := bus.NewJob("t", "r", 7, delta, scheduled, at); !proto.Equal(got, want) {
				t.Errorf("NewJob(delta %v, scheduled %v) = %v, want %v", delta, scheduled, got, want)
			}
		}
	}
}

func TestEventMsgID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ev   *syncv1.SyncEvent
		want string
	}{
		{&syncv1.SyncEvent{RunId: "r", Page: -1, Body: &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{Attempt: 1}}}, "r/started/1"},
		{&syncv1.SyncEvent{RunId: "r", Page: -1, Body: &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{Attempt: 2}}}, "r/started/2"},
		{&syncv1.SyncEvent{RunId: "r", Page: -1, Body: &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{FirstPage: 0, Pages: 3}}}, "r/fetched/0"},
		{&syncv1.SyncEvent{RunId: "r", Page: -1, Body: &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{FirstPage: syncv1.AttemptPageSpan, Pages: 3}}}, "r/fetched/1048576"},
		{&syncv1.SyncEvent{RunId: "r", Page: -1, Body: &syncv1.SyncEvent_Failed{}}, "r/failed"},
		{&syncv1.SyncEvent{RunId: "r", Page: 0, Body: &syncv1.SyncEvent_Users{}}, "r/0"},
		{&syncv1.SyncEvent{RunId: "r", Page: 42, Body: &syncv1.SyncEvent_TransitiveMembers{}}, "r/42"},
	}
	for _, c := range cases {
		got, err := bus.EventMsgID(c.ev)
		if err != nil || got != c.want {
			t.Errorf("EventMsgID(%v) = %q, %v; want %q", c.ev, got, err, c.want)
		}
	}
}

func TestRetryRedeliversAfterItsDelay(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		b := connect(t, url, fast)
		const delay = 700 * time.Millisecond
		var mu sync.Mutex
		var seen []time.Time
		c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 4}, func(context.Context, *syncv1.SyncJob) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, time.Now())
			if len(seen) == 1 {
				return bus.Retry(errors.New("tenant lease held"), delay)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, c)
		if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		devenv.WaitFor(t, 15*time.Second, "the job came back", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) >= 2
		})
		waitIdle(t, b, bus.ConsumerFetchers)
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 {
			t.Fatalf("handled %d times, want 2", len(seen))
		}
		if gap := seen[1].Sub(seen[0]); gap < delay {
			t.Fatalf("redelivered after %v, before the requested %v", gap, delay)
		}
	})
}

func TestDeadLetters(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		b := connect(t, url, fast)
		js := raw(t, url)
		tenant := uuid.NewString()

		permanent := newJob(tenant)
		// A payload that is not protobuf, and one filed under another
		// tenant's subject: neither may reach the handler.
		garbage := []byte("this is not protobuf")
		foreign, _ := proto.Marshal(newJob(uuid.NewString()))
		if _, err := js.Publish(ctx, bus.SubjectJobs+tenant, garbage, jetstream.WithMsgID("garbage")); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, bus.SubjectJobs+tenant, foreign, jetstream.WithMsgID("foreign")); err != nil {
			t.Fatal(err)
		}
		if err := b.PublishJob(ctx, permanent); err != nil {
			t.Fatal(err)
		}
		badEvent, _ := proto.Marshal(&syncv1.SyncEvent{TenantId: tenant, RunId: "r"}) // no body
		if _, err := js.Publish(ctx, bus.SubjectEvents+tenant, badEvent); err != nil {
			t.Fatal(err)
		}

		var calls atomic.Int32
		c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 2}, func(_ context.Context, j *syncv1.SyncJob) error {
			calls.Add(1)
			if j.RunId != permanent.RunId {
				t.Errorf("handler got job %v, which should have been dead-lettered", j)
			}
			return bus.Permanent(errors.New("tenant was deleted"))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, c)
		ce, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{}, func(context.Context, *syncv1.SyncEvent) error {
			t.Error("handler got an event without a body")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, ce)

		devenv.WaitFor(t, 15*time.Second, "four dead letters", func() bool { return len(dlq(t, js)) >= 4 })
		waitIdle(t, b, bus.ConsumerFetchers)
		waitIdle(t, b, bus.ConsumerReconcilers)
		letters := dlq(t, js)
		if len(letters) != 4 {
			t.Fatalf("%d dead letters, want 4", len(letters))
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("handler called %d times, want once", n)
		}
		bySubject := map[string]int{}
		reasons := map[string]string{}
		for _, m := range letters {
			bySubject[m.Subject]++
			h := m.Header
			for _, k := range []string{bus.HeaderDLQReason, bus.HeaderDLQSubject, bus.HeaderDLQStream,
				bus.HeaderDLQConsumer, bus.HeaderDLQStreamSeq, bus.HeaderDLQDeliveries, bus.HeaderDLQTime} {
				if h.Get(k) == "" {
					t.Errorf("dead letter on %s lacks header %s: %v", m.Subject, k, h)
				}
			}
			if h.Get(bus.HeaderDLQDeliveries) != "1" {
				t.Errorf("dead letter on %s after %s deliveries, want 1", m.Subject, h.Get(bus.HeaderDLQDeliveries))
			}
			reasons[h.Get(bus.HeaderDLQMsgID)] = h.Get(bus.HeaderDLQReason)
			switch h.Get(bus.HeaderDLQMsgID) {
			case "garbage":
				if string(m.Data) != string(garbage) {
					t.Errorf("dead letter payload %q, want the original", m.Data)
				}
			case permanent.RunId:
				var got syncv1.SyncJob
				if err := proto.Unmarshal(m.Data, &got); err != nil || !proto.Equal(&got, permanent) {
					t.Errorf("dead letter payload is not the original job: %v", err)
				}
			}
		}
		if bySubject[bus.SubjectDLQJobs+tenant] != 3 || bySubject[bus.SubjectDLQEvents+tenant] != 1 {
			t.Errorf("dead letters by subject: %v", bySubject)
		}
		for id, want := range map[string]string{"garbage": "undecodable", "foreign": "tenant mismatch", permanent.RunId: "tenant was deleted"} {
			if r := reasons[id]; !strings.Contains(r, want) {
				t.Errorf("reason of %s = %q, want it to mention %q", id, r, want)
			}
		}
		if n := streamMsgs(t, js, bus.StreamJobs) + streamMsgs(t, js, bus.StreamEvents); n != 0 {
			t.Errorf("%d dead-lettered messages are still in the work queues", n)
		}
	})
}

func TestLastDeliveryIsDeadLettered(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		opts.EventsMaxDeliver = 3
		b := connect(t, url, opts)
		js := raw(t, url)
		var calls atomic.Int32
		c, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{Concurrency: 2}, func(context.Context, *syncv1.SyncEvent) error {
			calls.Add(1)
			return errors.New("database unavailable")
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, c)
		tenant := uuid.NewString()
		ev := &syncv1.SyncEvent{TenantId: tenant, RunId: uuid.NewString(), Page: 0,
			Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}
		if err := b.PublishEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		devenv.WaitFor(t, 15*time.Second, "a dead letter", func() bool { return len(dlq(t, js)) == 1 })
		waitIdle(t, b, bus.ConsumerReconcilers)
		if n := calls.Load(); n != 3 {
			t.Fatalf("handler called %d times, want 3 (the maximum)", n)
		}
		m := dlq(t, js)[0]
		if m.Subject != bus.SubjectDLQEvents+tenant || m.Header.Get(bus.HeaderDLQDeliveries) != "3" ||
			!strings.Contains(m.Header.Get(bus.HeaderDLQReason), "database unavailable") {
			t.Fatalf("dead letter %s %v", m.Subject, m.Header)
		}
	})
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := connect(t, devenv.NATS(t), fast)
	var calls atomic.Int32
	done := make(chan struct{})
	c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(context.Context, *syncv1.SyncJob) error {
		if calls.Add(1) == 1 {
			panic("nil map")
		}
		close(done)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the job was not retried after the panic")
	}
	waitIdle(t, b, bus.ConsumerFetchers)
}

// TestInProgressKeepsSlowMessage: a handler busy for longer than several
// ack waits keeps its message, because the bus tells JetStream every third
// of the ack wait that it is still at work: the message is delivered once,
// to one replica, never again.
func TestInProgressKeepsSlowMessage(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		// Progress goes out every second: only a signal held up for two
		// whole seconds (not a loaded machine's scheduling delay) would
		// let the message go.
		opts.JobsAckWait = 3 * time.Second
		hold := 2*opts.JobsAckWait + opts.JobsAckWait/2
		b := connect(t, url, opts)
		// A second replica that would take the job if it were redelivered.
		other := connect(t, url, opts)
		deliveries := make(chan uint64, 8) // the delivery number of each call
		slow := func(ctx context.Context, _ *syncv1.SyncJob) error {
			d, _ := bus.DeliveryFromContext(ctx)
			deliveries <- d.Num
			// A long Graph page; the length of the work is the test, not a
			// stand-in for waiting on something.
			timer := time.NewTimer(hold)
			defer timer.Stop()
			select {
			case <-timer.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for _, x := range []*bus.Bus{b, other} {
			c, err := x.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 2}, slow)
			if err != nil {
				t.Fatal(err)
			}
			defer stop(t, c)
		}
		if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-deliveries:
			if n != 1 {
				t.Fatalf("first call on delivery %d, want 1", n)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the job was not delivered")
		}
		// Acknowledged once the handler is done, with nothing pending,
		// unacknowledged or redelivered left behind.
		devenv.WaitFor(t, hold+30*time.Second, "the job to be acknowledged", func() bool {
			l := lagOf(t, b, bus.ConsumerFetchers)
			return l.Total() == 0
		})
		for drained := false; !drained; {
			select {
			case n := <-deliveries:
				t.Errorf("the slow job was delivered again (delivery %d) while its handler was at work", n)
			default:
				drained = true
			}
		}
	})
}

func TestReplicasShareWork(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		const jobs = 40
		var mu sync.Mutex
		seen := map[string]int{}
		per := [2]int{}
		for i := range 2 {
			x := connect(t, url, fast)
			c, err := x.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 2}, func(_ context.Context, j *syncv1.SyncJob) error {
				time.Sleep(10 * time.Millisecond) // some work, so both replicas get a share
				mu.Lock()
				seen[j.RunId]++
				per[i]++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer stop(t, c)
		}
		b := connect(t, url, fast)
		for range jobs {
			if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
				t.Fatal(err)
			}
		}
		devenv.WaitFor(t, 20*time.Second, "every job handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == jobs
		})
		waitIdle(t, b, bus.ConsumerFetchers)
		mu.Lock()
		defer mu.Unlock()
		for id, n := range seen {
			if n != 1 {
				t.Errorf("job %s handled %d times", id, n)
			}
		}
		if per[0] == 0 || per[1] == 0 {
			t.Errorf("work was not shared: %v", per)
		}
	})
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := connect(t, devenv.NATS(t), fast)
	const limit = 3
	var running, peak, total atomic.Int32
	c, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{Concurrency: limit}, func(context.Context, *syncv1.SyncEvent) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		running.Add(-1)
		total.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	run := uuid.NewString()
	for i := range 20 {
		ev := &syncv1.SyncEvent{TenantId: "t1", RunId: run, Page: int32(i), Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}
		if err := b.PublishEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	devenv.WaitFor(t, 20*time.Second, "every event handled", func() bool { return total.Load() == 20 })
	if p := peak.Load(); p > limit || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..%d", p, limit)
	}
}

func TestStopWaitsForHandlers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := connect(t, devenv.NATS(t), fast)
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(hctx context.Context, _ *syncv1.SyncJob) error {
		close(started)
		<-release
		if hctx.Err() != nil {
			t.Error("Stop with time to spare cancelled the handler")
		}
		finished.Store(true)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Running() {
		t.Fatal("a started consumer is not running")
	}
	if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	<-started
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(sctx) }()
	devenv.WaitFor(t, 10*time.Second, "the stopping consumer to say it is not running", func() bool { return !c.Running() })
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler was running", err)
	default:
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop with time to spare: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the handler finished")
	}
	if !finished.Load() {
		t.Fatal("handler did not finish")
	}
	waitIdle(t, b, bus.ConsumerFetchers) // and its message was acknowledged
}

// TestStopHandsBackWhenItsContextEnds: a handler still running when Stop's
// context ends is cancelled, its message goes to another replica at once
// (not after its ack wait or a backoff), and Stop says it cut it short.
func TestStopHandsBackWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := devenv.NATS(t)
	slow := fast
	slow.JobsAckWait = 5 * time.Minute // a message not handed back would wait this long
	slow.RetryBase = time.Minute       // and one nak'd with backoff as long
	b := connect(t, url, slow)
	started := make(chan struct{})
	c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(ctx context.Context, _ *syncv1.SyncJob) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	job := newJob(uuid.NewString())
	if err := b.PublishJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	<-started
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := c.Stop(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop whose context ended before the handler: %v, want context.DeadlineExceeded", err)
	}
	if c.Running() {
		t.Fatal("a stopped consumer says it is running")
	}
	if id := nextJob(t, url, fast, 10*time.Second); id != job.RunId {
		t.Fatalf("another replica got run %q, want the handed-back %s", id, job.RunId)
	}
}

// TestConsumeContextBoundsOnlyTheStart: the context given to ConsumeJobs
// may end right after it returns; the consumer goes on taking messages,
// and its handlers' context is not done, until Stop.
func TestConsumeContextBoundsOnlyTheStart(t *testing.T) {
	t.Parallel()
	b := connect(t, devenv.NATS(t), fast)
	sctx, cancel := context.WithCancel(context.Background())
	handled := make(chan error, 1)
	c, err := b.ConsumeJobs(sctx, bus.ConsumeOptions{}, func(ctx context.Context, _ *syncv1.SyncJob) error {
		handled <- ctx.Err()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	cancel()
	if err := b.PublishJob(context.Background(), newJob(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-handled:
		if err != nil {
			t.Fatalf("the handler's context ended with the start's: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no job handled after the start's context ended")
	}
	if !c.Running() {
		t.Fatal("the consumer stopped running when the start's context ended")
	}
}

func TestJobQueued(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		b := connect(t, url, fast)
		js := raw(t, url)
		tenant, other := uuid.NewString(), uuid.NewString()
		a, c := newJob(tenant), newJob(tenant)
		// Another tenant's job and a garbage message on the same subject
		// must not confuse the search.
		if err := b.PublishJob(ctx, newJob(other)); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, bus.SubjectJobs+tenant, []byte("junk")); err != nil {
			t.Fatal(err)
		}
		for _, j := range []*syncv1.SyncJob{a, c} {
			if err := b.PublishJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		for _, run := range []string{a.RunId, c.RunId} {
			if ok, err := b.JobQueued(ctx, tenant, run); err != nil || !ok {
				t.Fatalf("JobQueued(%s) = %v, %v; want true", run, ok, err)
			}
		}
		if ok, err := b.JobQueued(ctx, tenant, uuid.NewString()); err != nil || ok {
			t.Fatalf("JobQueued(unknown run) = %v, %v; want false", ok, err)
		}
		// Once its job is acknowledged, a run has no job queued.
		cons, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(_ context.Context, j *syncv1.SyncJob) error {
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, cons)
		waitIdle(t, b, bus.ConsumerFetchers)
		if ok, err := b.JobQueued(ctx, tenant, a.RunId); err != nil || ok {
			t.Fatalf("JobQueued after ack = %v, %v; want false", ok, err)
		}
	})
}

func TestRetryOutlivesMaxDeliver(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		opts.JobsMaxDeliver = 2
		b := connect(t, url, opts)
		js := raw(t, url)
		var calls atomic.Int32
		done := make(chan *syncv1.SyncJob, 1)
		c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(_ context.Context, j *syncv1.SyncJob) error {
			if calls.Add(1) <= 5 { // a tenant lease held through five deliveries
				return bus.Retry(errors.New("tenant lease held"), 10*time.Millisecond)
			}
			done <- j
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, c)
		job := newJob(uuid.NewString())
		if err := b.PublishJob(ctx, job); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-done:
			if !proto.Equal(got, job) {
				t.Fatalf("got %v, want %v", got, job)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("job not handled after %d calls", calls.Load())
		}
		waitIdle(t, b, bus.ConsumerFetchers)
		if n := len(dlq(t, js)); n != 0 {
			t.Fatalf("%d dead letters for a job that only waited", n)
		}
		if n := calls.Load(); n != 6 {
			t.Fatalf("handler called %d times, want 6", n)
		}
		if n := streamMsgs(t, js, bus.StreamJobs); n != 0 {
			t.Fatalf("%d messages left in SYNC_JOBS", n)
		}
	})
}

func TestStoppedConsumerLeavesNoPullBehind(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		opts.JobsAckWait = time.Minute // a message lost to a dead pull request would wait this long
		opts.PollWait = 30 * time.Second
		b := connect(t, url, opts)
		c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 4}, func(context.Context, *syncv1.SyncJob) error {
			t.Error("a stopped consumer got a job")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Its pull request is waiting on the server now; Stop must not
		// leave it there to swallow the next job.
		fetchers, err := raw(t, url).Consumer(ctx, bus.StreamJobs, bus.ConsumerFetchers)
		if err != nil {
			t.Fatal(err)
		}
		devenv.WaitFor(t, 5*time.Second, "the pull request is waiting", func() bool {
			ci, err := fetchers.Info(ctx)
			return err == nil && ci.NumWaiting > 0
		})
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		if id := nextJob(t, url, opts, 10*time.Second); id == "" {
			t.Fatal("the job went to the stopped consumer's pull request")
		}
	})
}

func TestDeliveryFromContext(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		if _, ok := bus.DeliveryFromContext(ctx); ok {
			t.Fatal("a delivery outside any handler")
		}
		opts := fast
		opts.JobsMaxDeliver = 2
		b := connect(t, url, opts)
		var mu sync.Mutex
		var seen []bus.Delivery
		done := make(chan struct{})
		c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(ctx context.Context, _ *syncv1.SyncJob) error {
			d, ok := bus.DeliveryFromContext(ctx)
			if !ok {
				t.Error("no delivery in the handler's context")
			}
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, d)
			switch len(seen) {
			case 1:
				return errors.New("database unavailable")
			case 2:
				// The last delivery: a Retry requeues a copy.
				return bus.Retry(errors.New("tenant lease held"), 10*time.Millisecond)
			}
			close(done)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, c)
		if err := b.PublishJob(ctx, newJob(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("the job was not handled three times")
		}
		mu.Lock()
		defer mu.Unlock()
		want := []bus.Delivery{{Num: 1, Max: 2}, {Num: 2, Max: 2}, {Num: 1, Max: 2}}
		if !slices.Equal(seen, want) {
			t.Fatalf("deliveries %+v, want %+v (the requeued copy counts afresh)", seen, want)
		}
		for i, d := range seen {
			if d.Last() != (i == 1) {
				t.Errorf("delivery %+v: Last() = %v", d, d.Last())
			}
		}
	})
}

func TestRetryOnShutdownAtLastDeliveryIsRequeued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := devenv.NATS(t)
	opts := fast
	opts.JobsMaxDeliver = 1 // every delivery is the last
	b := connect(t, url, opts)
	js := raw(t, url)
	started := make(chan struct{})
	c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(ctx context.Context, _ *syncv1.SyncJob) error {
		close(started)
		<-ctx.Done()
		return bus.Retry(fmt.Errorf("handed back on shutdown: %w", ctx.Err()), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	job := newJob(uuid.NewString())
	if err := b.PublishJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	<-started
	stopNow(t, c)
	// Another replica gets a copy; nothing is dead-lettered.
	if id := nextJob(t, url, opts, 10*time.Second); id != job.RunId {
		t.Fatalf("another replica got run %q, want %s: the job handed back on its last delivery did not come back (%d dead letters)",
			id, job.RunId, len(dlq(t, js)))
	}
	if n := len(dlq(t, js)); n != 0 {
		t.Fatalf("%d dead letters for a job handed back on shutdown", n)
	}
}

// TestHandBackWhileAPullIsWaiting stops a consumer whose handler is busy
// while its other slot has a pull request waiting on the server. The job
// handed back must reach another replica at once: were the nak to reach
// the server before the waiting pull is gone, the server would deliver
// the job to that dead pull and keep it for a whole ack wait.
func TestHandBackWhileAPullIsWaiting(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		opts.JobsAckWait = time.Minute // a job lost to a dead pull would wait this long
		opts.RetryBase = time.Minute   // and one nak'd with backoff as long
		js := raw(t, url)
		fetchers := func() jetstream.Consumer {
			c, err := js.Consumer(ctx, bus.StreamJobs, bus.ConsumerFetchers)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		// The race is between two writes on one connection; a few rounds
		// make losing it likely were the order not enforced.
		for round := range 8 {
			b := connect(t, url, opts)
			started := make(chan struct{})
			c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 2}, func(ctx context.Context, _ *syncv1.SyncJob) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			job := newJob(uuid.NewString())
			if err := b.PublishJob(ctx, job); err != nil {
				t.Fatal(err)
			}
			<-started
			devenv.WaitFor(t, 5*time.Second, "the free slot's pull request is waiting", func() bool {
				ci, err := fetchers().Info(ctx)
				return err == nil && ci.NumWaiting > 0
			})
			stopNow(t, c)

			if id := nextJob(t, url, opts, 10*time.Second); id != job.RunId {
				t.Fatalf("round %d: another replica got run %q, want the handed-back %s", round, id, job.RunId)
			}
			b.Close()
		}
	})
}

// TestTenantInFlight counts a tenant's messages still in the work queues:
// waiting, being handled, or waiting out a retry delay, but not those
// acknowledged or dead-lettered, nor another tenant's.
func TestTenantInFlight(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		opts.RetryBase, opts.RetryMax = time.Hour, time.Hour // a failed event waits out its delay
		b := connect(t, url, opts)
		tenant, other := uuid.NewString(), uuid.NewString()
		inFlight := func() (uint64, uint64) {
			t.Helper()
			j, e, err := b.TenantInFlight(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			return j, e
		}
		if j, e := inFlight(); j != 0 || e != 0 {
			t.Fatalf("a new tenant has %d jobs and %d events in flight", j, e)
		}
		job := newJob(tenant)
		for _, j := range []*syncv1.SyncJob{job, newJob(other)} {
			if err := b.PublishJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		event := func(tenant string, page int32) *syncv1.SyncEvent {
			return &syncv1.SyncEvent{TenantId: tenant, RunId: job.RunId, Page: page,
				Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}
		}
		for _, ev := range []*syncv1.SyncEvent{event(tenant, 0), event(tenant, 1), event(tenant, 2), event(other, 0)} {
			if err := b.PublishEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if j, e := inFlight(); j != 1 || e != 3 {
			t.Fatalf("in flight: %d jobs, %d events; want 1, 3", j, e)
		}

		// The job is handled; page 0 is applied, page 1 fails for now,
		// page 2 is given up.
		cj, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(context.Context, *syncv1.SyncJob) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, cj)
		ce, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{}, func(_ context.Context, ev *syncv1.SyncEvent) error {
			switch ev.GetPage() {
			case 1:
				return errors.New("not yet")
			case 2:
				return bus.Permanent(errors.New("never"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, ce)
		devenv.WaitFor(t, 10*time.Second, "the tenant's messages are handled", func() bool {
			j, e := inFlight()
			return j == 0 && e == 1
		})
		if j, e := inFlight(); j != 0 || e != 1 {
			t.Fatalf("in flight after handling: %d jobs, %d events; want 0, 1 (the page waiting to be retried)", j, e)
		}
		if j, e, err := b.TenantInFlight(ctx, other); err != nil || j != 0 || e != 0 {
			t.Errorf("the other tenant: %d jobs, %d events, %v; want 0, 0 (its event went to our consumer too)", j, e, err)
		}
		if _, _, err := b.TenantInFlight(ctx, "a.b"); !errors.Is(err, bus.ErrInvalid) {
			t.Errorf("TenantInFlight(a.b) = %v, want ErrInvalid", err)
		}
	})
}

// TestTransientFailuresSpendNoDeliveries: a handler that fails
// transiently far more often than the consumer allows deliveries is
// called again in process until it succeeds, on its first delivery.
func TestTransientFailuresSpendNoDeliveries(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		opts := fast
		opts.EventsMaxDeliver = 2
		opts.RetryBase, opts.RetryMax = time.Millisecond, 5*time.Millisecond
		b := connect(t, url, opts)
		js := raw(t, url)
		var calls atomic.Int32
		deliveries := make(chan uint64, 1)
		c, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{}, func(ctx context.Context, _ *syncv1.SyncEvent) error {
			if calls.Add(1) <= 30 {
				return bus.Transient(errors.New("database unavailable"))
			}
			d, _ := bus.DeliveryFromContext(ctx)
			deliveries <- d.Num
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop(t, c)
		ev := &syncv1.SyncEvent{TenantId: uuid.NewString(), RunId: uuid.NewString(), Page: 0,
			Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}
		if err := b.PublishEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-deliveries:
			if n != 1 {
				t.Fatalf("succeeded on delivery %d, want 1", n)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no success after %d calls (%d dead letters)", calls.Load(), len(dlq(t, js)))
		}
		waitIdle(t, b, bus.ConsumerReconcilers)
		if n := len(dlq(t, js)); n != 0 {
			t.Fatalf("%d dead letters", n)
		}
	})
}

// TestTransientFailuresOutlastingTheirBudgetCountAsDeliveries: past
// TransientFor, a transient failure spends a delivery like any other, so
// a message that only ever fails "transiently" is not kept for ever.
func TestTransientFailuresOutlastingTheirBudgetCountAsDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := devenv.NATS(t)
	opts := fast
	opts.EventsMaxDeliver = 2
	opts.RetryBase, opts.RetryMax = time.Millisecond, 2*time.Millisecond
	opts.TransientFor = 20 * time.Millisecond
	b := connect(t, url, opts)
	js := raw(t, url)
	c, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{}, func(context.Context, *syncv1.SyncEvent) error {
		return bus.Transient(errors.New("statement timeout"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	ev := &syncv1.SyncEvent{TenantId: uuid.NewString(), RunId: uuid.NewString(), Page: 0,
		Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}
	if err := b.PublishEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	devenv.WaitFor(t, 15*time.Second, "a dead letter", func() bool { return len(dlq(t, js)) == 1 })
	if m := dlq(t, js)[0]; m.Header.Get(bus.HeaderDLQDeliveries) != "2" ||
		!strings.Contains(m.Header.Get(bus.HeaderDLQReason), "failing transiently") {
		t.Fatalf("dead letter %v", m.Header)
	}
}

// TestShutdownOnLastDeliveryHandsBack: whatever a handler returns once
// the service shuts down (its context cancelled), or while it still waits
// out an outage when its consumer stops, is no verdict on the message: on
// its last delivery it is handed back as a fresh copy, not dead-lettered
// (nor nak'd, which would leave it in the stream, never delivered again).
func TestShutdownOnLastDeliveryHandsBack(t *testing.T) {
	for name, fail := range map[string]func(ctx context.Context) error{
		"cancelled handler": func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("query cancelled: %w", ctx.Err())
		},
		"stopped while waiting out an outage": func(context.Context) error {
			return bus.Transient(errors.New("database unavailable"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := devenv.NATS(t)
			opts := fast
			opts.JobsMaxDeliver = 1 // every delivery is the last
			opts.RetryBase, opts.RetryMax = 5*time.Millisecond, 10*time.Millisecond
			b := connect(t, url, opts)
			js := raw(t, url)
			var once sync.Once
			started := make(chan struct{})
			c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(ctx context.Context, _ *syncv1.SyncJob) error {
				once.Do(func() { close(started) })
				return fail(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			job := newJob(uuid.NewString())
			if err := b.PublishJob(ctx, job); err != nil {
				t.Fatal(err)
			}
			<-started
			stopNow(t, c)
			if id := nextJob(t, url, opts, 10*time.Second); id != job.RunId {
				t.Fatalf("another replica got run %q, want %s (%d dead letters)", id, job.RunId, len(dlq(t, js)))
			}
			if n := len(dlq(t, js)); n != 0 {
				t.Fatalf("%d dead letters for a job handed back on shutdown", n)
			}
		})
	}
}

// TestStrandedLastDeliveryIsRescued: a replica takes a job on its last
// allowed delivery and dies without a word. JetStream will not deliver
// the job again, yet keeps it in its work queue; the bus hears of it
// (MAX_DELIVERIES advisory, kept in SYNC_STRANDED until a replica reads
// it) and publishes it again, or, once it was stranded MaxStrandings
// times, dead-letters it after telling the service. Nothing stays behind.
func TestStrandedLastDeliveryIsRescued(t *testing.T) {
	t.Parallel()
	for server, start := range servers(t) {
		for _, strandedBefore := range []int{0, bus.DefaultMaxStrandings} {
			t.Run(fmt.Sprintf("%s/stranded %d times before", server, strandedBefore), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				url := start(t)
				opts := fast
				opts.JobsMaxDeliver = 1 // every delivery is the last
				opts.JobsAckWait = 300 * time.Millisecond
				b := connect(t, url, opts)
				js := raw(t, url)
				tenant := uuid.NewString()
				job := newJob(tenant)
				data, err := proto.Marshal(job)
				if err != nil {
					t.Fatal(err)
				}
				msg := &nats.Msg{Subject: bus.SubjectJobs + tenant, Data: data, Header: nats.Header{}}
				if strandedBefore > 0 {
					msg.Header.Set(bus.HeaderStrandings, strconv.Itoa(strandedBefore))
				}
				if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(job.RunId)); err != nil {
					t.Fatal(err)
				}

				// A replica takes the job and dies.
				nc, err := nats.Connect(url)
				if err != nil {
					t.Fatal(err)
				}
				djs, err := jetstream.New(nc)
				if err != nil {
					t.Fatal(err)
				}
				cons, err := djs.Consumer(ctx, bus.StreamJobs, bus.ConsumerFetchers)
				if err != nil {
					t.Fatal(err)
				}
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if m := <-batch.Messages(); m == nil {
					t.Fatal("the doomed replica got no job")
				}
				nc.Close()

				// Another replica runs.
				got := make(chan string, 4)
				told := make(chan string, 4)
				c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{
					OnDeadLetter: func(_ context.Context, m proto.Message, reason string) error {
						told <- m.(*syncv1.SyncJob).GetRunId() + ": " + reason
						return nil
					},
				}, func(_ context.Context, j *syncv1.SyncJob) error {
					got <- j.GetRunId()
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				defer stop(t, c)

				if strandedBefore == 0 {
					select {
					case id := <-got:
						if id != job.RunId {
							t.Fatalf("got run %s, want %s", id, job.RunId)
						}
					case <-time.After(15 * time.Second):
						t.Fatalf("the stranded job never came back (%d dead letters)", len(dlq(t, js)))
					}
				} else {
					devenv.WaitFor(t, 15*time.Second, "a dead letter", func() bool { return len(dlq(t, js)) == 1 })
					reason := dlq(t, js)[0].Header.Get(bus.HeaderDLQReason)
					if !strings.Contains(reason, "never answered") {
						t.Fatalf("dead letter's reason %q", reason)
					}
					select {
					case s := <-told:
						if !strings.HasPrefix(s, job.RunId+": ") || !strings.Contains(s, "never answered") {
							t.Fatalf("service told %q", s)
						}
					default:
						t.Fatal("the service was not told of the dead letter")
					}
					if len(got) != 0 {
						t.Fatal("a job stranded too often was handled again")
					}
				}
				devenv.WaitFor(t, 15*time.Second, "nothing of the tenant in flight", func() bool {
					jobs, _, err := b.TenantInFlight(ctx, tenant)
					if err != nil {
						t.Fatal(err)
					}
					return jobs == 0
				})
			})
		}
	}
}

// TestTooLargeIsRefusedClearly: an event over the server's max payload is
// refused before it is sent, with an error that says so and how large it
// was, and nothing is published.
func TestTooLargeIsRefusedClearly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := devenv.NATS(t)
	b := connect(t, url, fast)
	js := raw(t, url)
	long := strings.Repeat("x", 1<<10)
	var users []*syncv1.User
	for i := 0; int64(len(users)*len(long)) <= b.MaxPayload(); i++ {
		users = append(users, &syncv1.User{Id: uuid.NewString(), DisplayName: long})
	}
	ev := &syncv1.SyncEvent{TenantId: uuid.NewString(), RunId: uuid.NewString(), RunSeq: 1, Page: 0,
		Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{Users: users}}}
	err := b.PublishEvent(ctx, ev)
	if !errors.Is(err, bus.ErrTooLarge) || !strings.Contains(err.Error(), "bytes encoded") {
		t.Fatalf("publish of %d users of 1 KiB: %v; want ErrTooLarge", len(users), err)
	}
	if n := streamMsgs(t, js, bus.StreamEvents); n != 0 {
		t.Fatalf("%d events published", n)
	}
	// Half of it goes through.
	ev.GetUsers().Users = users[:len(users)/2]
	if err := b.PublishEvent(ctx, ev); err != nil {
		t.Fatalf("publish of a page under the limit: %v", err)
	}
}

// TestEventWindowKeepsATenantToItsLimit: with a window of 3, a tenant's
// fourth event waits until one of the three has been handled, while
// another tenant publishes freely.
func TestEventWindowKeepsATenantToItsLimit(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := context.Background()
		b := connect(t, url, fast)
		big, small := uuid.NewString(), uuid.NewString()
		// Each tenant's events belong to a run of its own (the tenant id
		// serves as run id), so that their message ids differ.
		event := func(tenant string, page int32) *syncv1.SyncEvent {
			return &syncv1.SyncEvent{TenantId: tenant, RunId: tenant, Page: page,
				Body: &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{}}}
		}
		window := func(tenant string, limit int) *bus.EventWindow {
			t.Helper()
			w, err := b.EventWindow(tenant, limit)
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		events := func(tenant string) uint64 {
			t.Helper()
			_, n, err := b.TenantInFlight(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		w := window(big, 3)
		for page := range int32(3) {
			if d, err := w.PublishEvent(ctx, event(big, page)); err != nil || d != 0 {
				t.Fatalf("page %d: waited %v, %v; want no wait below the limit", page, d, err)
			}
		}
		fourth := make(chan error, 1)
		go func() {
			_, err := w.PublishEvent(ctx, event(big, 3))
			fourth <- err
		}()

		// The other tenant has a window of its own: it is not held up.
		ws := window(small, 3)
		for page := range int32(3) {
			if d, err := ws.PublishEvent(ctx, event(small, page)); err != nil || d != 0 {
				t.Fatalf("other tenant's page %d: waited %v, %v", page, d, err)
			}
		}
		select {
		case err := <-fourth:
			t.Fatalf("the fourth event of a full window went ahead (%v)", err)
		default:
		}
		if n := events(big); n != 3 {
			t.Fatalf("the big tenant has %d events in the queue; want its window's 3", n)
		}

		// The queue drains: the fourth goes.
		c, err := b.ConsumeEvents(ctx, bus.ConsumeOptions{}, func(context.Context, *syncv1.SyncEvent) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-fourth:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the fourth event still waits after the queue drained")
		}
		devenv.WaitFor(t, 10*time.Second, "every event handled", func() bool { return events(big) == 0 })
		stop(t, c)

		// A publish into a full window ends with its context's error and
		// publishes nothing.
		third := uuid.NewString()
		full := window(third, 1)
		if _, err := full.PublishEvent(ctx, event(third, 0)); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if d, err := full.PublishEvent(cctx, event(third, 1)); !errors.Is(err, context.DeadlineExceeded) || d <= 0 {
			t.Fatalf("publish into a full window: waited %v, %v; want a wait ended by the deadline", d, err)
		}
		if n := events(third); n != 1 {
			t.Fatalf("%d events after a cancelled publish; want 1", n)
		}

		// No limit never waits; another tenant's event is refused.
		unlimited := window(third, 0)
		if d, err := unlimited.PublishEvent(ctx, event(third, 2)); err != nil || d != 0 {
			t.Fatalf("no limit: waited %v, %v", d, err)
		}
		if _, err := unlimited.PublishEvent(ctx, event(big, 9)); !errors.Is(err, bus.ErrInvalid) {
			t.Errorf("another tenant's event: %v, want ErrInvalid", err)
		}
		if _, err := b.EventWindow("a.b", 3); !errors.Is(err, bus.ErrInvalid) {
			t.Errorf("EventWindow(a.b) = %v, want ErrInvalid", err)
		}
	})
}
