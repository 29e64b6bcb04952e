package fetcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/graph"
	"github.com/entrasync/entrasync/libs/store"
)

// Defaults of Config.
const (
	DefaultLeaseTTL    = 2 * time.Minute
	DefaultConcurrency = 2
	// DefaultGroupConcurrency keeps a run well inside Graph's identity
	// budget (3,500 to 8,000 resource units per 10 s per app and tenant;
	// a member list page costs 2 with $select, a batch of 20 of them 40)
	// at Graph's latencies.
	DefaultGroupConcurrency = 4
	// DefaultEventsInFlight lets a run read a few dozen pages ahead of the
	// reconcilers, enough to keep a handful of reconciler replicas busy,
	// while a small tenant's run queues behind at most that many of a
	// large tenant's pages.
	DefaultEventsInFlight = 32
)

// Config tunes one fetcher replica.
type Config struct {
	// ID names this replica as the holder of tenant leases and in
	// RunStarted; default "<hostname>-<pid>". It must be unique per replica.
	ID string
	// Graph says where Graph and the token authority are. Its Logger is
	// replaced by the run's, which carries the tenant and run ids.
	Graph graph.Config
	// LeaseTTL is how long a tenant lease lasts without renewal: after a
	// crash, the tenant waits this long before another replica may run it.
	// The lease is renewed every third of it while a run is in progress.
	// A job that finds the lease held comes back after an eighth of it
	// (between 1 s and 15 s): waiting costs no delivery, and a run queued
	// behind a short one should not wait out a whole TTL.
	LeaseTTL time.Duration
	// Concurrency is how many jobs this replica works on at once.
	Concurrency int
	// GroupConcurrency is how many Graph JSON batches of member-list
	// pages one run has in flight at once, and how many pages of member
	// lists wait for room in the tenant's event window at once. The users
	// and groups listings are each read one page after another (each
	// page's nextLink leads to the next), the two side by side; member
	// lists are independent.
	GroupConcurrency int
	// MemberBatch is how many member-list pages one Graph JSON batch
	// reads, 1..graph.MaxBatch (20, Graph's limit), default 20: first
	// pages of lists not started and later pages of lists being read, in
	// one round trip (graph.ListOptions). 1 reads every page on its own.
	MemberBatch int
	// EventsInFlight is how many of one tenant's events may wait in
	// SYNC_EVENTS at once (waiting for a reconciler, being applied, or
	// coming back after a retry). A run publishes its next event only
	// once fewer are there (bus.EventWindow): that keeps the shared
	// queue fair, since no tenant then has more than this many events in
	// front of another's. Default DefaultEventsInFlight.
	EventsInFlight int
	// Observer hears how long runs waited for room in SYNC_EVENTS; nil
	// hears nothing. *metrics.Metrics is one.
	Observer Observer
	// MaxEventBytes is the largest event a run publishes, encoded; a Graph
	// page that would be larger goes out as several pages. Default: the
	// largest message the NATS server takes (bus.Bus.MaxPayload).
	MaxEventBytes int
	// Clock tells the time: when events were observed, when the lease
	// was last renewed, and (unless Graph has its own) what Graph's
	// Retry-After dates are read against. Default time.Now; tests pass
	// their own, so that what a run stamps is theirs to predict.
	Clock func() time.Time
	// Rand returns a number in [0, 1) that spreads out waits: a job that
	// found its tenant leased comes back after a jittered delay. Default
	// math/rand/v2's Float64.
	Rand func() float64
	// Budget tunes the Graph resource-unit budget every replica shares
	// (libs/budget, a JetStream KV on the bus's connection, made at
	// Start): each Graph request of a run pays into its app+tenant bucket
	// and its app's, waits when they are short, and a 429 pauses the
	// tenant for every replica. The zero value is production's (Graph's
	// quotas, margin 0.9, the system clock); its Observer hears each take.
	Budget budget.Config
	// Unbudgeted sends Graph requests without the shared budget
	// (GRAPH_BUDGET=off): only Graph's 429s slow a run down, and a 429
	// stops only the request that got it.
	Unbudgeted bool
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.ID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "fetcher"
		}
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.GroupConcurrency == 0 {
		c.GroupConcurrency = DefaultGroupConcurrency
	}
	if c.MemberBatch == 0 {
		c.MemberBatch = graph.MaxBatch
	}
	if c.EventsInFlight == 0 {
		c.EventsInFlight = DefaultEventsInFlight
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Graph.Clock == nil {
		c.Graph.Clock = c.Clock
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	c.Graph.SetDefaults()
}

// Validate reports every bad field in one error.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("fetcher: id is empty"))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("fetcher: lease TTL %s: want at least 1s", c.LeaseTTL))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("fetcher: concurrency %d: want 1..256", c.Concurrency))
	}
	if c.GroupConcurrency < 1 || c.GroupConcurrency > 64 {
		errs = append(errs, fmt.Errorf("fetcher: group concurrency %d: want 1..64", c.GroupConcurrency))
	}
	if c.MemberBatch < 1 || c.MemberBatch > graph.MaxBatch {
		errs = append(errs, fmt.Errorf("fetcher: member batch %d: want 1..%d", c.MemberBatch, graph.MaxBatch))
	}
	if c.EventsInFlight < 1 || c.EventsInFlight > 100000 {
		errs = append(errs, fmt.Errorf("fetcher: events in flight %d: want 1..100000", c.EventsInFlight))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("fetcher: clock is nil"))
	}
	if c.Rand == nil {
		errs = append(errs, errors.New("fetcher: rand is nil"))
	}
	if err := c.Graph.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !c.Unbudgeted {
		// The defaults are filled in by the bus at Start (replicas follow
		// its streams'); a copy with them says whether the rest is usable.
		bc := c.Budget
		bc.SetDefaults()
		if err := bc.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("fetcher: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Deps are the fetcher's connections, owned by the caller: Stop does not
// close them.
type Deps struct {
	Bus    *bus.Bus
	Store  *store.Store
	Logger zerolog.Logger
}

// Observer hears what a fetcher waits for besides Graph.
type Observer interface {
	// EventsWindowWait is called with how long a run waited before it
	// could publish an event, when it waited at all.
	EventsWindowWait(time.Duration)
}

// Fetcher is one fetcher replica.
type Fetcher struct {
	cfg   Config
	bus   *bus.Bus
	store *store.Store
	log   zerolog.Logger

	mu       sync.Mutex
	consumer bus.Consumer    // nil until Start
	busy     map[string]bool // tenants this replica is fetching now
	// budget is the Graph budget shared with every replica; nil until
	// Start, and for good when Config.Unbudgeted.
	budget *budget.Budget
}

// New checks the configuration and returns a fetcher that is not running
// yet.
func New(cfg Config, deps Deps) (*Fetcher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil || deps.Store == nil {
		return nil, errors.New("fetcher: Deps.Bus and Deps.Store are required")
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = int(deps.Bus.MaxPayload())
	}
	if cfg.Graph.Tokens == nil {
		// A tenant's runs share their Graph tokens: each run asked the
		// authority for one (a round trip before its first page), where
		// one lasts about an hour. A run's token requests pass its
		// Graph budget unmetered, so the credential that makes them may
		// outlive the run.
		cfg.Graph.Tokens = graph.NewTokenCache()
	}
	log := deps.Logger.With().Str("fetcher", cfg.ID).Logger()
	return &Fetcher{cfg: cfg, bus: deps.Bus, store: deps.Store, log: log, busy: map[string]bool{}}, nil
}

// Start starts consuming jobs and returns once the consumer runs. ctx
// bounds only the start: the work goes on until Stop.
func (f *Fetcher) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.consumer != nil {
		return errors.New("fetcher: already started")
	}
	// The budget exists before the first job: no run may reach Graph
	// unbudgeted because it came early.
	if !f.cfg.Unbudgeted && f.budget == nil {
		b, err := f.bus.NewBudget(ctx, f.cfg.Budget)
		if err != nil {
			return fmt.Errorf("fetcher: %w", err)
		}
		f.budget = b
	}
	c, err := f.bus.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: f.cfg.Concurrency}, f.handle)
	if err != nil {
		return fmt.Errorf("fetcher: consume jobs: %w", err)
	}
	f.consumer = c
	f.log.Info().Int("concurrency", f.cfg.Concurrency).Dur("lease_ttl", f.cfg.LeaseTTL).
		Str("graph", f.cfg.Graph.BaseURL).Bool("graph_budget", f.budget != nil).Msg("fetcher started")
	return nil
}

// Stop stops taking jobs and hands the jobs in progress back to the
// stream at once, where another replica (or this one, after a restart)
// picks them up; their tenant leases are released on the way. It returns
// once every handler has returned. Unlike the reconciler's, a fetcher's
// work in flight is not waited for, whatever ctx allows: a run can take
// many minutes and finishing it would hold up a deploy, while handing it
// back costs a repeat of the Graph reads, nothing more.
func (f *Fetcher) Stop(ctx context.Context) error {
	f.mu.Lock()
	c := f.consumer
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	now, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Stop(now); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("fetcher: stop: %w", err)
	}
	f.log.Info().Msg("fetcher stopped")
	return nil
}

// Ready reports an error unless this replica is consuming jobs: started,
// not stopped, its consumer alive. A worker's /readyz asks it.
func (f *Fetcher) Ready() error {
	f.mu.Lock()
	c := f.consumer
	f.mu.Unlock()
	return bus.Consuming(c)
}
