package budget

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/entrasync/entrasync/libs/devenv"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// replicas connects n separate NATS connections (as n fetcher processes
// would) to one embedded server and returns a Budget on each, all on the
// same KV bucket.
func replicas(t testing.TB, n int, cfg Config, clocks ...Clock) []*Budget {
	t.Helper()
	url := devenv.NATS(t)
	var out []*Budget
	for i := range n {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		if i < len(clocks) {
			c.Clock = clocks[i]
		}
		b, err := New(t.Context(), js, c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// fakeClock is a Clock the test moves. With auto set, SleepUntil moves it
// to the instant asked for and returns, as if the wait had passed.
type fakeClock struct {
	auto bool

	mu      sync.Mutex
	now     time.Time
	waiters map[*waiter]struct{}
	changed chan struct{} // closed and replaced when waiters change
}

type waiter struct {
	at time.Time
	ch chan struct{}
}

var epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock {
	return &fakeClock{now: epoch, waiters: map[*waiter]struct{}{}, changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if c.auto && t.After(c.now) {
		c.now = t
	}
	if !t.After(c.now) {
		c.mu.Unlock()
		return ctx.Err()
	}
	w := &waiter{at: t, ch: make(chan struct{})}
	c.waiters[w] = struct{}{}
	c.notify()
	c.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, w)
		c.notify()
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *fakeClock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock by d and wakes the sleepers whose instant came.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for w := range c.waiters {
		if !w.at.After(c.now) {
			close(w.ch)
			delete(c.waiters, w)
		}
	}
	c.notify()
}

// Sleepers waits until n goroutines sleep on the clock and returns the
// instants they wait for. It fails the test after 20 s of real time.
func (c *fakeClock) Sleepers(t testing.TB, n int) []time.Time {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		if len(c.waiters) >= n {
			var at []time.Time
			for w := range c.waiters {
				at = append(at, w.at)
			}
			c.mu.Unlock()
			return at
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("fewer than %d goroutines sleep on the clock after 20s", n)
		}
	}
}

// smallLimits make buckets a test can drain in a few hundred takes.
var smallLimits = Limits{Small: 100, Medium: 200, Large: 400, App: 100000, TenantWindow: 10 * time.Second, AppWindow: 20 * time.Second}

var (
	keyA = Key{App: "9a3d526c-b3c1-4479-ba74-197b5c5751ae", Tenant: "0785ef7c-2d7a-4542-b048-95bcab406e0b"}
	keyB = Key{App: keyA.App, Tenant: "11111111-2222-3333-4444-555555555555"}
)

// available is the units key's tenant bucket and its app's bucket hold.
func available(t testing.TB, b *Budget, key Key) (tenant, app float64) {
	t.Helper()
	tenant, app, _, err := b.Available(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tenant, app
}

// returns runs f in a goroutine and gives a channel with its result.
func returns(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// within waits for ch for up to 20 s of real time.
func within(t testing.TB, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return within 20s", what)
	}
}

// pending fails the test if ch already holds a result.
func pending(t testing.TB, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned (%v) while it should wait", what, err)
	default:
	}
}
