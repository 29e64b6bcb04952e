package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config, from Microsoft's identity and access limits
// (throttling-limits.md): per app and tenant 3,500 resource units per 10 s
// for a tenant under 50 users, 5,000 up to 500 users, 8,000 above; per app
// across all tenants 150,000 per 20 s.
const (
	DefaultBucket       = "GRAPH_BUDGET"
	DefaultMargin       = 0.9
	DefaultSmall        = 3500
	DefaultMedium       = 5000
	DefaultLarge        = 8000
	DefaultTenantWindow = 10 * time.Second
	DefaultApp          = 150000
	DefaultAppWindow    = 20 * time.Second
	// DefaultTTL is how long a bucket nobody touched is kept in the KV.
	// A bucket idle that long is full again, so dropping it loses only
	// its tenant size, which SetTenantSize restores; it outlasts any
	// Retry-After a Graph client waits out by far.
	DefaultTTL = 24 * time.Hour
)

// ErrInvalidKey marks a Key whose app or tenant id is empty or holds
// characters other than letters, digits, '-' and '_' (Entra ids are GUIDs).
var ErrInvalidKey = errors.New("budget: invalid key")

// Limits are Graph's quotas, before the safety margin.
type Limits struct {
	// Small, Medium and Large are the resource units per TenantWindow of
	// an app in a tenant of under 50 users, 50 to 500, and over 500.
	Small, Medium, Large int
	TenantWindow         time.Duration
	// App is the resource units per AppWindow of an app across all tenants.
	App       int
	AppWindow time.Duration
}

// LargeTenant is the user count from which a tenant is in Graph's largest
// tier: a larger count sizes no budget differently.
const LargeTenant = 501

// Tenant is the quota per TenantWindow of an app in a tenant of users
// users; users < 0 (not known) gives the smallest.
func (l Limits) Tenant(users int) int {
	switch {
	case users >= LargeTenant:
		return l.Large
	case users >= 50:
		return l.Medium
	default:
		return l.Small
	}
}

// Config tunes a Budget. The zero value, with SetDefaults, is production.
type Config struct {
	// Bucket is the JetStream KV bucket shared by every replica.
	Bucket string
	// Margin is the share of Graph's quotas a Budget hands out, in (0, 1]:
	// Graph counts requests entrasync cannot see (other apps' tools in the
	// same registration, retries below the Transport), and its own bucket
	// is not exactly ours.
	Margin float64
	// Limits are Graph's quotas; zero fields take the defaults.
	Limits Limits
	// Clock tells the time and waits; nil is the system clock.
	Clock Clock
	// Replicas is the KV bucket's replication factor (1 on one server).
	Replicas int
	// TTL drops a bucket after this long without a write.
	TTL time.Duration
	// Observer hears of every Take and correction, for metrics; nil hears
	// nothing.
	Observer Observer
}

// Observer hears what a Budget hands out. A metrics registry implements it.
type Observer interface {
	// BudgetTaken is told of each Take: the units taken and how long the
	// caller waited for them (refill or pause).
	BudgetTaken(units int, waited time.Duration)
	// BudgetCorrected is told of each Settle that changed anything: actual
	// minus estimated units (negative: units given back).
	BudgetCorrected(units int)
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Margin == 0 {
		c.Margin = DefaultMargin
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Limits.Small, DefaultSmall)
	def(&c.Limits.Medium, DefaultMedium)
	def(&c.Limits.Large, DefaultLarge)
	def(&c.Limits.App, DefaultApp)
	defDur(&c.Limits.TenantWindow, DefaultTenantWindow)
	defDur(&c.Limits.AppWindow, DefaultAppWindow)
	defDur(&c.TTL, DefaultTTL)
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Validate reports every unusable setting.
func (c *Config) Validate() error {
	var errs []error
	if math.IsNaN(c.Margin) || c.Margin <= 0 || c.Margin > 1 {
		errs = append(errs, fmt.Errorf("budget: margin %v: want in (0, 1]", c.Margin))
	}
	for name, v := range map[string]int{"small": c.Limits.Small, "medium": c.Limits.Medium, "large": c.Limits.Large, "app": c.Limits.App} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("budget: %s quota %d: want > 0", name, v))
		}
	}
	if c.Limits.TenantWindow <= 0 || c.Limits.AppWindow <= 0 {
		errs = append(errs, fmt.Errorf("budget: windows %s, %s: want > 0", c.Limits.TenantWindow, c.Limits.AppWindow))
	}
	if c.TTL <= 0 {
		errs = append(errs, fmt.Errorf("budget: TTL %s: want > 0", c.TTL))
	}
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("budget: replicas %d: want >= 1", c.Replicas))
	}
	return errors.Join(errs...)
}

// Key names the budget of one app registration in one Entra tenant.
type Key struct {
	// App is the app registration's client id.
	App string
	// Tenant is the Entra tenant id.
	Tenant string
}

func (k Key) String() string { return k.App + "/" + k.Tenant }

func (k Key) validate() error {
	if !validID(k.App) || !validID(k.Tenant) {
		return fmt.Errorf("%w: %q", ErrInvalidKey, k.String())
	}
	return nil
}

// tenantKey and appKey are the KV keys of the two buckets a request takes
// from. Ids hold no '.', so the keys cannot collide.
func (k Key) tenantKey() string { return "tenant." + k.App + "." + k.Tenant }
func appKey(app string) string  { return "app." + app }

func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// state is one bucket as stored in the KV, in JSON. Times are Unix
// nanoseconds of the writer's clock.
type state struct {
	// Tokens are the units left at At; negative after a request cost more
	// than was estimated or taken (a debt the refill pays first).
	Tokens float64 `json:"tokens"`
	At     int64   `json:"at"`
	// Paused is when Graph's Retry-After ends; no unit is handed out before.
	Paused int64 `json:"paused_until,omitempty"`
	// Capacity is the most the bucket holds; it refills at Capacity per
	// window.
	Capacity float64 `json:"capacity"`
	// Users is the tenant size Capacity was derived from (-1: unknown).
	Users int `json:"users"`
}

// refill brings s to now. A clock behind the one that wrote At refills
// nothing rather than taking units back, so skew between replicas can
// only ever hand out skew × rate units early, never lose any.
func (s *state) refill(now time.Time, window time.Duration) {
	n := now.UnixNano()
	if n > s.At {
		s.Tokens += s.Capacity * float64(n-s.At) / float64(window)
		s.At = n
	}
	if s.Tokens > s.Capacity {
		s.Tokens = s.Capacity
	}
}

// refillTime is how long the refill takes to bring units.
func (s *state) refillTime(units float64, window time.Duration) time.Duration {
	return time.Duration(math.Ceil(units * float64(window) / s.Capacity))
}

// bucket is what the two kinds of bucket (app+tenant, app) differ in.
type bucket struct {
	key    string
	window time.Duration
	// fresh is a full bucket, for a key not in the KV yet.
	fresh func(now time.Time) state
	// configured: the capacity is this replica's configuration (the
	// app's quota), not data a replica stored (a tenant's size).
	configured bool
}

// Budget hands out Graph resource units from buckets every replica shares
// in a JetStream KV. It is safe for concurrent use.
type Budget struct {
	kv    jetstream.KeyValue
	cfg   Config
	clock Clock

	mu    sync.Mutex
	slots map[string]*slot

	// conflicts counts writes the KV refused because another writer got
	// in first (tests read it).
	conflicts atomic.Int64
}

type entry struct {
	s   state
	rev uint64
}

// slot is this process's side of one key. Its lock serializes the
// process's writes to the key: goroutines of one replica queue here
// instead of colliding at the server, where each collision costs a
// round trip. Every Take writes its app's key, so this matters there.
type slot struct {
	mu sync.Mutex
	// last is the entry this process last read or wrote: a write is tried
	// against its revision first, saving the read when no other replica
	// wrote in between (the KV refuses it if one did).
	last entry
	ok   bool
}

// slot returns key's slot, making it on first use. Slots live as long as
// the Budget: one per tenant and app this replica served, a few hundred
// bytes each.
func (b *Budget) slot(key string) *slot {
	b.mu.Lock()
	defer b.mu.Unlock()
	sl, ok := b.slots[key]
	if !ok {
		sl = &slot{}
		b.slots[key] = sl
	}
	return sl
}

// New creates or binds the KV bucket and returns a Budget on it.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Budget, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "entrasync: Microsoft Graph resource-unit budget shared by the fetchers",
		// Only the newest state matters; CAS needs no history.
		History:  1,
		TTL:      cfg.TTL,
		Storage:  jetstream.FileStorage,
		Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("budget: key-value bucket %s: %w", cfg.Bucket, err)
	}
	return &Budget{kv: kv, cfg: cfg, clock: cfg.Clock, slots: map[string]*slot{}}, nil
}

// Config is the Budget's configuration, defaults filled in.
func (b *Budget) Config() Config { return b.cfg }

func (b *Budget) tenantBucket(k Key) bucket {
	return bucket{key: k.tenantKey(), window: b.cfg.Limits.TenantWindow, fresh: func(now time.Time) state {
		c := float64(b.cfg.Limits.Tenant(-1)) * b.cfg.Margin
		return state{Tokens: c, At: now.UnixNano(), Capacity: c, Users: -1}
	}}
}

func (b *Budget) appBucket(app string) bucket {
	return bucket{key: appKey(app), window: b.cfg.Limits.AppWindow, configured: true, fresh: func(now time.Time) state {
		c := float64(b.cfg.Limits.App) * b.cfg.Margin
		return state{Tokens: c, At: now.UnixNano(), Capacity: c, Users: -1}
	}}
}

// Take waits until both the app+tenant bucket and the app's bucket hold
// cost units and takes them, or returns ctx's error. It waits while the
// tenant (or the app) is paused by a Retry-After. A cost above a bucket's
// capacity waits for a full bucket and leaves it in debt.
func (b *Budget) Take(ctx context.Context, key Key, cost int) error {
	if err := key.validate(); err != nil {
		return err
	}
	cost = max(cost, 1)
	start := b.clock.Now()
	tb, ab := b.tenantBucket(key), b.appBucket(key.App)
	for {
		ready, took, err := b.tryTake(ctx, tb, cost)
		if err != nil {
			return fmt.Errorf("budget: take %d units of %s: %w", cost, key, err)
		}
		if took {
			ready, took, err = b.tryTake(ctx, ab, cost)
			if err == nil && took {
				if b.cfg.Observer != nil {
					b.cfg.Observer.BudgetTaken(cost, b.clock.Now().Sub(start))
				}
				return nil
			}
			// The app's bucket is short (rare: it is 20 times a large
			// tenant's): give the tenant's units back rather than hold them
			// while waiting, which would slow this tenant's other requests.
			if rerr := b.give(context.WithoutCancel(ctx), tb, cost); rerr != nil && err == nil {
				err = rerr
			}
			if err != nil {
				return fmt.Errorf("budget: take %d units of app %s: %w", cost, key.App, err)
			}
		}
		if err := b.clock.SleepUntil(ctx, ready); err != nil {
			return fmt.Errorf("budget: wait for %d units of %s: %w", cost, key, err)
		}
	}
}

// tryTake takes cost units from bk if it has them now. When it does not,
// ready is the earliest instant it may: the end of a pause, or when the
// refill covers the shortfall.
func (b *Budget) tryTake(ctx context.Context, bk bucket, cost int) (ready time.Time, took bool, err error) {
	_, err = b.modify(ctx, bk, func(s *state, now time.Time) bool {
		// f runs again after a refused write: only its last run counts.
		took = false
		if n := now.UnixNano(); n < s.Paused {
			ready = time.Unix(0, s.Paused)
			return false
		}
		need := math.Min(float64(cost), s.Capacity)
		if short := need - s.Tokens; short > 1e-9 {
			// At is now, or later when a replica whose clock runs ahead
			// wrote last: the refill counts from there.
			ready = time.Unix(0, s.At).Add(s.refillTime(short, bk.window))
			return false
		}
		s.Tokens -= float64(cost)
		took = true
		return true
	})
	return ready, took, err
}

// give returns units to bk, up to its capacity.
func (b *Budget) give(ctx context.Context, bk bucket, units int) error {
	_, err := b.modify(ctx, bk, func(s *state, _ time.Time) bool {
		s.Tokens = math.Min(s.Tokens+float64(units), s.Capacity)
		return true
	})
	return err
}

// Settle corrects a Take of estimated units once Graph said what the
// request cost (x-ms-resource-unit): both buckets give back or take the
// difference. Taking never waits: the units are spent already, so a
// bucket may go into debt, which delays the next Take instead.
func (b *Budget) Settle(ctx context.Context, key Key, estimated, actual int) error {
	if err := key.validate(); err != nil {
		return err
	}
	diff := actual - max(estimated, 1)
	if diff == 0 {
		return nil
	}
	adjust := func(s *state, _ time.Time) bool {
		s.Tokens = math.Min(s.Tokens-float64(diff), s.Capacity)
		return true
	}
	if _, err := b.modify(ctx, b.tenantBucket(key), adjust); err != nil {
		return fmt.Errorf("budget: settle %s: %w", key, err)
	}
	if _, err := b.modify(ctx, b.appBucket(key.App), adjust); err != nil {
		return fmt.Errorf("budget: settle app %s: %w", key.App, err)
	}
	if b.cfg.Observer != nil {
		b.cfg.Observer.BudgetCorrected(diff)
	}
	return nil
}

// Pause stops every replica from taking units of key before until, as
// Graph's Retry-After on a 429 for the tenant asks; other tenants go on.
// Graph's bucket is empty when it throttles, so the tenant's is emptied
// too: after the pause it hands out only what it refills from then on. A
// later pause never shortens an earlier one. until not in the future only
// empties the bucket (a 429 without Retry-After).
func (b *Budget) Pause(ctx context.Context, key Key, until time.Time) error {
	if err := key.validate(); err != nil {
		return err
	}
	if _, err := b.modify(ctx, b.tenantBucket(key), pause(until)); err != nil {
		return fmt.Errorf("budget: pause %s: %w", key, err)
	}
	return nil
}

// PauseApp is Pause for the app's bucket across all tenants: a 429 whose
// x-ms-throttle-scope is Application.
func (b *Budget) PauseApp(ctx context.Context, app string, until time.Time) error {
	if !validID(app) {
		return fmt.Errorf("%w: app %q", ErrInvalidKey, app)
	}
	if _, err := b.modify(ctx, b.appBucket(app), pause(until)); err != nil {
		return fmt.Errorf("budget: pause app %s: %w", app, err)
	}
	return nil
}

func pause(until time.Time) func(*state, time.Time) bool {
	u := until.UnixNano()
	return func(s *state, now time.Time) bool {
		s.Paused = max(s.Paused, u)
		s.Tokens = math.Min(s.Tokens, 0)
		// The refill starts when the pause ends.
		s.At = max(s.At, u)
		return true
	}
}

// SetTenantSize sizes key's bucket by the tenant's user count (Graph's S,
// M, L tiers) for every replica. Until it is called a tenant gets the
// smallest tier, which is safe for any tenant. The fetcher calls it when
// it knows the count (the mirror's, or a users listing's).
func (b *Budget) SetTenantSize(ctx context.Context, key Key, users int) error {
	if err := key.validate(); err != nil {
		return err
	}
	capacity := float64(b.cfg.Limits.Tenant(users)) * b.cfg.Margin
	_, err := b.modify(ctx, b.tenantBucket(key), func(s *state, now time.Time) bool {
		if s.Users == users && s.Capacity == capacity {
			return false
		}
		if capacity > s.Capacity && now.UnixNano() >= s.Paused {
			// A larger tenant than thought: its bucket was larger all
			// along. Not while a Retry-After runs: Graph said its bucket
			// was empty, and it refills from the pause's end.
			s.Tokens += capacity - s.Capacity
		}
		s.Users, s.Capacity = users, capacity
		s.Tokens = math.Min(s.Tokens, capacity)
		return true
	})
	if err != nil {
		return fmt.Errorf("budget: size of %s: %w", key, err)
	}
	return nil
}

// Quota is the units per TenantWindow Graph gives an app in a tenant of
// users users (its tier), before the margin.
func (b *Budget) Quota(users int) int { return b.cfg.Limits.Tenant(users) }

// Available is what key's bucket and its app's hold now and until when
// the tenant is paused (zero if it is not), for diagnostics and tests.
func (b *Budget) Available(ctx context.Context, key Key) (tenant, app float64, pausedUntil time.Time, err error) {
	if err := key.validate(); err != nil {
		return 0, 0, time.Time{}, err
	}
	ts, err := b.read(ctx, b.tenantBucket(key))
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	as, err := b.read(ctx, b.appBucket(key.App))
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	if ts.Paused > b.clock.Now().UnixNano() {
		pausedUntil = time.Unix(0, ts.Paused)
	}
	return ts.Tokens, as.Tokens, pausedUntil, nil
}

func (b *Budget) read(ctx context.Context, bk bucket) (state, error) {
	return b.modify(ctx, bk, func(*state, time.Time) bool { return false })
}

// modify applies f to bk's state, refilled to now, and writes the result
// if f says so, under optimistic concurrency: a write another replica got
// in before is refused by the KV, and f runs again on the newer state.
// Each refusal means another writer succeeded, so the loop always makes
// progress. It returns the state f left.
func (b *Budget) modify(ctx context.Context, bk bucket, f func(s *state, now time.Time) bool) (state, error) {
	sl := b.slot(bk.key)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	cached := true
	for {
		if err := ctx.Err(); err != nil {
			return state{}, err
		}
		e, ok := sl.last, sl.ok
		if !ok || !cached {
			var err error
			e, err = b.get(ctx, bk)
			if err != nil {
				sl.ok = false
				return state{}, err
			}
			sl.last, sl.ok = e, true
			cached = false
		}
		now := b.clock.Now()
		s := e.s
		if e.rev == 0 && s.At == 0 {
			s = bk.fresh(now)
		}
		s.refill(now, bk.window)
		if !f(&s, now) {
			if cached {
				// A decision to wait must not rest on an old copy: another
				// replica may have given units back or resized the bucket.
				cached = false
				continue
			}
			return s, nil
		}
		raw, err := json.Marshal(s)
		if err != nil {
			return state{}, err
		}
		var rev uint64
		if e.rev == 0 {
			rev, err = b.kv.Create(ctx, bk.key, raw)
		} else {
			rev, err = b.kv.Update(ctx, bk.key, raw, e.rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			b.conflicts.Add(1)
			sl.ok = false
			cached = false
			continue
		}
		if err != nil {
			sl.ok = false
			return state{}, fmt.Errorf("write %s: %w", bk.key, err)
		}
		sl.last, sl.ok = entry{s: s, rev: rev}, true
		return s, nil
	}
}

// get reads bk's newest state; a key not in the KV (new, or dropped by the
// TTL) is revision 0 with a zero state.
func (b *Budget) get(ctx context.Context, bk bucket) (entry, error) {
	kve, err := b.kv.Get(ctx, bk.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, fmt.Errorf("read %s: %w", bk.key, err)
	}
	var s state
	if err := json.Unmarshal(kve.Value(), &s); err != nil || s.Capacity <= 0 || math.IsNaN(s.Tokens) {
		// Unreadable (a future format, or damage): start the bucket anew,
		// as for a new key, rather than stop every fetcher; the revision
		// keeps the CAS.
		s = bk.fresh(b.clock.Now())
	}
	if bk.configured {
		// Every write brings the app's capacity to this replica's
		// configuration, so a changed quota or margin takes effect.
		s.Capacity = bk.fresh(time.Time{}).Capacity
	}
	return entry{s: s, rev: kve.Revision()}, nil
}
