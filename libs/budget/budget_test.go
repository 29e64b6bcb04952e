package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is an Observer that writes down what it hears.
type recorder struct {
	mu sync.Mutex
	strings.Builder
}

func (r *recorder) BudgetTaken(units int, waited time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.Builder, "took %d after %s; ", units, waited)
}

func (r *recorder) BudgetCorrected(units int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.Builder, "corrected by %d; ", units)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Builder.String()
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	var c Config
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "GRAPH_BUDGET" || c.Margin != 0.9 || c.Limits.Tenant(-1) != 3500 || c.Limits.Tenant(49) != 3500 ||
		c.Limits.Tenant(50) != 5000 || c.Limits.Tenant(500) != 5000 || c.Limits.Tenant(501) != 8000 || c.Limits.App != 150000 {
		t.Fatalf("defaults: %+v", c)
	}
	bad := Config{Margin: 1.5, Limits: Limits{Small: -1}, TTL: -time.Second}
	bad.SetDefaults()
	if err := bad.Validate(); err == nil {
		t.Fatal("margin 1.5, a negative quota and TTL validated")
	}
}

func TestKeysAreValidated(t *testing.T) {
	t.Parallel()
	b := replicas(t, 1, Config{})[0]
	for _, k := range []Key{{}, {App: "a", Tenant: ""}, {App: "a.b", Tenant: "t"}, {App: "a", Tenant: "t>"}, {App: "a", Tenant: "t u"}} {
		if err := b.Take(t.Context(), k, 1); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Take %+v: %v, want ErrInvalidKey", k, err)
		}
	}
}

// The bucket starts full, is empty after its capacity was taken, and a
// Take then waits exactly until the refill covers it, on the clock.
func TestBucketRefillsWithTheClock(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	obs := &recorder{}
	b := replicas(t, 1, Config{Margin: 1, Limits: smallLimits, Observer: obs}, clock)[0]
	ctx := t.Context()

	if err := b.Take(ctx, keyA, 100); err != nil { // the whole bucket, at once
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyA); tenant != 0 {
		t.Fatalf("after taking the capacity: %v left", tenant)
	}
	// 100 units per 10 s: 10 units take 1 s to come back.
	done := returns(func() error { return b.Take(ctx, keyA, 10) })
	at := clock.Sleepers(t, 1)
	if want := epoch.Add(time.Second); !at[0].Equal(want) {
		t.Fatalf("Take sleeps until %s, want %s", at[0], want)
	}
	clock.Advance(999 * time.Millisecond)
	clock.Sleepers(t, 1)
	pending(t, done, "Take of 10 units after 0.999s")
	clock.Advance(time.Millisecond)
	within(t, done, "Take of 10 units after 1s")
	if got := obs.String(); got != "took 100 after 0s; took 10 after 1s; " {
		t.Fatalf("observer heard %q", got)
	}
	if err := b.Settle(ctx, keyA, 10, 12); err != nil {
		t.Fatal(err)
	}
	if got := obs.String(); !strings.HasSuffix(got, "corrected by 2; ") {
		t.Fatalf("observer heard %q", got)
	}

	// A long idle refills up to the capacity, not beyond.
	clock.Advance(time.Hour)
	if tenant, _ := available(t, b, keyA); tenant != 100 {
		t.Fatalf("after an hour: %v units, want the capacity 100", tenant)
	}
	if err := b.SetTenantSize(ctx, keyA, 600); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyA); tenant != 400 {
		t.Fatalf("a large tenant's full bucket: %v, want 400", tenant)
	}
	if err := b.SetTenantSize(ctx, keyA, 10); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyA); tenant != 100 {
		t.Fatalf("shrunk to a small tenant: %v, want 100", tenant)
	}
}

// A tier found larger while Graph's Retry-After runs adds nothing to the
// paused bucket: Graph said its bucket is empty, so at the pause's end the
// refill starts from 0, at the larger tier's rate.
func TestALargerTierDoesNotFillAPausedBucket(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Margin: 1, Limits: smallLimits}, clock)[0]
	ctx := t.Context()
	until := epoch.Add(time.Second)
	if err := b.Pause(ctx, keyA, until); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTenantSize(ctx, keyA, 600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if tenant, _ := available(t, b, keyA); tenant != 0 {
		t.Fatalf("at the pause's end: %v units, want 0", tenant)
	}
	clock.Advance(time.Second)
	if tenant, _ := available(t, b, keyA); tenant != 40 {
		t.Fatalf("1 s after the pause: %v units, want the large tier's 40", tenant)
	}
	// Unpaused, a larger tier is a larger bucket at once.
	if err := b.SetTenantSize(ctx, keyB, 600); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyB); tenant != 400 {
		t.Fatalf("an unpaused large tenant: %v units, want 400", tenant)
	}
}

// A request costing more than the bucket holds waits for a full bucket
// and leaves a debt the refill pays first.
func TestCostAboveCapacityLeavesDebt(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Margin: 1, Limits: smallLimits}, clock)[0]
	if err := b.Take(t.Context(), keyA, 150); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyA); tenant != -50 {
		t.Fatalf("after 150 of 100: %v, want -50", tenant)
	}
	done := returns(func() error { return b.Take(t.Context(), keyA, 1) })
	if at := clock.Sleepers(t, 1); !at[0].Equal(epoch.Add(5100 * time.Millisecond)) {
		t.Fatalf("next unit at %s, want after 5.1s", at[0].Sub(epoch))
	}
	clock.Advance(5100 * time.Millisecond)
	within(t, done, "Take after the debt")
}

// Two replicas, two goroutines each, take as fast as they can from one
// tenant's bucket while the test moves the clock in steps. Counting every
// unit against the clock: over any interval no more than the capacity
// plus the refill of that interval went out, and the budget was used in
// full (it is not merely slow).
func TestReplicasShareOneBucket(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := Config{Margin: 0.9, Limits: smallLimits}
	rs := replicas(t, 2, cfg, clock, clock)
	capacity := 0.9 * float64(smallLimits.Small)
	rate := capacity / smallLimits.TenantWindow.Seconds() // per second

	ctx, cancel := context.WithCancel(t.Context())
	var taken atomic.Int64
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				cost := 1 + rnd.IntN(5)
				if err := rs[w%2].Take(ctx, keyA, cost); err != nil {
					return
				}
				taken.Add(int64(cost))
			}
		}()
	}
	type snap struct {
		at    time.Duration
		total int64
	}
	var snaps []snap
	const step = 250 * time.Millisecond
	const steps = 120 // 30 s: three windows
	for range steps + 1 {
		clock.Sleepers(t, workers)
		snaps = append(snaps, snap{clock.Now().Sub(epoch), taken.Load()})
		clock.Advance(step)
	}
	cancel()
	wg.Wait()

	for i := range snaps {
		before := int64(0)
		if i > 0 {
			before = snaps[i-1].total
		}
		for j := i; j < len(snaps); j++ {
			got := snaps[j].total - before
			limit := capacity + rate*(snaps[j].at-snaps[i].at).Seconds()
			if float64(got) > limit+1e-6 {
				t.Fatalf("from %s to %s: %d units taken, limit %.1f", snaps[i].at, snaps[j].at, got, limit)
			}
		}
	}
	last := snaps[len(snaps)-1]
	if full := capacity + rate*last.at.Seconds(); float64(last.total) < full-5 {
		t.Fatalf("%d units taken in %s, want about %.0f: the budget went unused", last.total, last.at, full)
	}
	t.Logf("%d units in %s (limit %.0f)", last.total, last.at, capacity+rate*last.at.Seconds())
}

// A paused tenant waits on every replica until the pause ends; another
// tenant of the same app goes at once.
func TestPauseBlocksOnlyThatTenant(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rs := replicas(t, 2, Config{Limits: smallLimits}, clock, clock)
	ctx := t.Context()
	until := epoch.Add(1500 * time.Millisecond)
	if err := rs[0].Pause(ctx, keyA, until); err != nil {
		t.Fatal(err)
	}
	a0 := returns(func() error { return rs[0].Take(ctx, keyA, 1) })
	a1 := returns(func() error { return rs[1].Take(ctx, keyA, 1) })
	for _, at := range clock.Sleepers(t, 2) {
		if !at.Equal(until) {
			t.Fatalf("a paused Take sleeps until %s, want the pause's end %s", at, until)
		}
	}
	// The other tenant is not slowed: its Take returns with the clock
	// where it was.
	if err := rs[1].Take(ctx, keyB, 5); err != nil {
		t.Fatal(err)
	}
	if _, _, p, _ := rs[1].Available(ctx, keyB); !p.IsZero() {
		t.Fatalf("tenant B paused until %s", p)
	}
	clock.Advance(1499 * time.Millisecond)
	clock.Sleepers(t, 2)
	pending(t, a0, "replica 0's Take before the pause ends")
	pending(t, a1, "replica 1's Take before the pause ends")

	// A shorter pause recorded later does not shorten it.
	if err := rs[1].Pause(ctx, keyA, epoch.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, p, _ := rs[0].Available(ctx, keyA); !p.Equal(until) {
		t.Fatalf("paused until %s after a shorter pause, want %s", p, until)
	}

	// The pause emptied the bucket: at its end the refill starts from 0,
	// so 1 unit (at 9 units/s) comes 1/9 s after it.
	clock.Advance(time.Millisecond)
	for _, at := range clock.Sleepers(t, 2) {
		if at.Before(until) || at.After(until.Add(112*time.Millisecond)) {
			t.Fatalf("after the pause a Take sleeps until %s, want within 1/9 s after %s", at, until)
		}
	}
	clock.Advance(112 * time.Millisecond)
	clock.Sleepers(t, 1) // one of the two got the first unit; the other waits for the next
	clock.Advance(112 * time.Millisecond)
	within(t, a0, "replica 0's Take after the pause")
	within(t, a1, "replica 1's Take after the pause")
}

// An Application-scoped pause stops every tenant of the app.
func TestPauseAppBlocksEveryTenant(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Limits: smallLimits}, clock)[0]
	ctx := t.Context()
	if err := b.PauseApp(ctx, keyA.App, epoch.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	other := Key{App: "another-app", Tenant: keyA.Tenant}
	if err := b.Take(ctx, other, 1); err != nil {
		t.Fatal(err)
	}
	a := returns(func() error { return b.Take(ctx, keyA, 1) })
	bb := returns(func() error { return b.Take(ctx, keyB, 1) })
	clock.Sleepers(t, 2)
	// While the app waits, its tenants' units are not held.
	if tenant, _ := available(t, b, keyA); tenant != 90 {
		t.Fatalf("tenant A holds %v while its app is paused, want its 90", tenant)
	}
	clock.Advance(2 * time.Second)
	clock.Sleepers(t, 1)
	clock.Advance(time.Second)
	within(t, a, "tenant A after the app's pause")
	within(t, bb, "tenant B after the app's pause")
}

func TestSettleCorrects(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Margin: 1, Limits: smallLimits}, clock)[0]
	ctx := t.Context()
	if err := b.Take(ctx, keyA, 2); err != nil {
		t.Fatal(err)
	}
	check := func(wantTenant, wantApp float64) {
		t.Helper()
		tenant, app := available(t, b, keyA)
		if tenant != wantTenant || app != wantApp {
			t.Fatalf("tenant %v app %v, want %v %v", tenant, app, wantTenant, wantApp)
		}
	}
	check(98, 99998)
	if err := b.Settle(ctx, keyA, 2, 5); err != nil { // it cost 5
		t.Fatal(err)
	}
	check(95, 99995)
	if err := b.Settle(ctx, keyA, 5, 1); err != nil { // another cost 1, not 5
		t.Fatal(err)
	}
	check(99, 99999)
	if err := b.Settle(ctx, keyA, 1, 1); err != nil {
		t.Fatal(err)
	}
	check(99, 99999)
	// Giving back never fills past the capacity.
	if err := b.Settle(ctx, keyA, 50, 1); err != nil {
		t.Fatal(err)
	}
	check(100, 100000)
	// A correction past what is left is a debt, not a wait.
	if err := b.Settle(ctx, keyA, 1, 130); err != nil {
		t.Fatal(err)
	}
	check(-29, 100000-129)
}

// Two replicas, eight goroutines, one bucket: every unit is counted once
// although the writes collide (the KV refuses a stale revision and the
// loser tries again on the newer state).
func TestConcurrentTakesRetryConflicts(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	limits := smallLimits
	limits.Small = 10000
	rs := replicas(t, 2, Config{Margin: 1, Limits: limits}, clock, clock)
	var wg sync.WaitGroup
	const goroutines, each = 8, 40
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := rs[g%2].Take(t.Context(), keyA, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	tenant, app := available(t, rs[0], keyA)
	if tenant != 10000-goroutines*each || app != 100000-goroutines*each {
		t.Fatalf("left: tenant %v app %v, want %d and %d", tenant, app, 10000-goroutines*each, 100000-goroutines*each)
	}
	if c := rs[0].conflicts.Load() + rs[1].conflicts.Load(); c == 0 {
		t.Fatal("no write conflicted: the test did not exercise the retry")
	} else {
		t.Logf("%d conflicting writes retried", c)
	}
}

// A replica whose clock runs behind the one that last wrote refills
// nothing (it never counts negative time) and waits on its own clock.
func TestClockSkewNeverRefillsBackwards(t *testing.T) {
	t.Parallel()
	ahead, behind := newFakeClock(), newFakeClock()
	ahead.Advance(5 * time.Second)
	rs := replicas(t, 2, Config{Margin: 1, Limits: smallLimits}, ahead, behind)
	ctx := t.Context()
	if err := rs[0].Take(ctx, keyA, 100); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, rs[1], keyA); tenant != 0 {
		t.Fatalf("the replica behind sees %v units, want 0", tenant)
	}
	done := returns(func() error { return rs[1].Take(ctx, keyA, 10) })
	at := behind.Sleepers(t, 1)
	// Its clock reads 0 s; the bucket's time is 5 s; 10 units are 1 s of refill.
	if want := epoch.Add(6 * time.Second); !at[0].Equal(want) {
		t.Fatalf("the replica behind sleeps until %s, want %s", at[0].Sub(epoch), want.Sub(epoch))
	}
	behind.Advance(6 * time.Second)
	within(t, done, "Take on the replica behind")

	s := state{Tokens: 3, At: epoch.Add(time.Second).UnixNano(), Capacity: 10}
	s.refill(epoch, 10*time.Second)
	if s.Tokens != 3 || s.At != epoch.Add(time.Second).UnixNano() {
		t.Fatalf("refill at an earlier instant: %+v", s)
	}
}

func TestTakeEndsWithItsContext(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Margin: 1, Limits: smallLimits}, clock)[0]
	if err := b.Pause(t.Context(), keyA, epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := returns(func() error { return b.Take(ctx, keyA, 1) })
	clock.Sleepers(t, 1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Take after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Take ignored its context")
	}
}

// A state written in a form this version cannot read starts anew, as a
// new key does, instead of failing every fetcher.
func TestUnreadableStateStartsEmpty(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Margin: 1, Limits: smallLimits}, clock)[0]
	if _, err := b.kv.Put(t.Context(), keyA.tenantKey(), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyA); tenant != 100 {
		t.Fatalf("unreadable state: %v units, want a full bucket", tenant)
	}
	if err := b.Take(t.Context(), keyA, 10); err != nil {
		t.Fatal(err)
	}
	if tenant, _ := available(t, b, keyA); math.Abs(tenant-90) > 1e-9 {
		t.Fatalf("after 10 units: %v", tenant)
	}
}

// BenchmarkTake measures Takes on one embedded NATS server with buckets
// that never run dry (no waiting): one replica in a loop, one replica's
// goroutines on different tenants (they share the app's key), and two
// replicas on one tenant (their writes collide at the server).
func BenchmarkTake(b *testing.B) {
	big := Limits{Small: 1 << 40, Medium: 1 << 40, Large: 1 << 40, App: 1 << 40, TenantWindow: time.Second, AppWindow: time.Second}
	rs := replicas(b, 2, Config{Limits: big})
	bg := rs[0]
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := bg.Take(b.Context(), keyA, 2); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-tenants", func(b *testing.B) {
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			key := Key{App: keyA.App, Tenant: "t" + string(rune('a'+n.Add(1)%26))}
			for pb.Next() {
				if err := bg.Take(b.Context(), key, 2); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("two-replicas-one-tenant", func(b *testing.B) {
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			r := rs[n.Add(1)%2]
			for pb.Next() {
				if err := r.Take(b.Context(), keyB, 2); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
