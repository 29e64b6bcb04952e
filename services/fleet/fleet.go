// Package fleet starts every entrasync service in one process: the api, the
// scheduler, N fetchers, M reconcilers and the notifier, each with its own NATS
// connection, exactly as they run on their own in production. It is what
// `make run` starts and what the end-to-end tests drive.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/graph"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/services/api"
	"github.com/entrasync/entrasync/services/fetcher"
	"github.com/entrasync/entrasync/services/notifier"
	"github.com/entrasync/entrasync/services/reconciler"
	"github.com/entrasync/entrasync/services/scheduler"
)

// Config says what to start and where its dependencies are.
type Config struct {
	DatabaseURL string
	NATSURL     string

	GraphBaseURL   string
	AuthorityHost  string
	GraphScope     string            // "": Graph's resource, derived by libs/graph
	GraphTransport http.RoundTripper // nil: system roots (SSL_CERT_FILE)
	// GraphMaxRetryAfter is the longest Retry-After fetchers wait out;
	// 0 means libs/graph's default.
	GraphMaxRetryAfter time.Duration
	// GraphBudget tunes the Graph budget the fetchers share through NATS
	// (zero: production's; a nil Observer is the fleet's metrics);
	// GraphUnbudgeted turns it off (GRAPH_BUDGET=off).
	GraphBudget     budget.Config
	GraphUnbudgeted bool

	APIAddr    string // "" or "127.0.0.1:0" for any free port
	AdminToken string
	SecretKey  []byte

	Fetchers int // replicas; 0 means 1
	// GroupConcurrency is each fetcher's; 0 means the fetcher's default.
	GroupConcurrency int
	// EventsInFlight is each fetcher's cap on one tenant's events in
	// SYNC_EVENTS; 0 means the fetcher's default.
	EventsInFlight int
	Reconcilers    int  // replicas; 0 means 1
	Scheduler      bool // start the scheduler too

	// Bus tunes every service's NATS connection; the zero value is
	// production's.
	Bus bus.Options
	// LeaseTTL is each fetcher's; 0 means the fetcher's default.
	LeaseTTL time.Duration
	// Scheduling is the scheduler's config; zero fields take its defaults.
	Scheduling scheduler.Config
	// Notifier starts the notifier too (webhook delivery of notification
	// tasks), with Notifying as its config.
	Notifier  bool
	Notifying notifier.Config

	Logger zerolog.Logger
}

// Fleet is a running set of services.
type Fleet struct {
	// API is the running api; API.Addr() is where it listens.
	API *api.Server
	// Store is the fleet's own handle on Postgres, for inspection.
	Store *store.Store
	// Metrics is the process's registry, served on the api's /metrics
	// (one process, so one registry for every service in it).
	Metrics *metrics.Metrics

	stops []func(context.Context) error
}

type lifecycle interface {
	Start(context.Context) error
	Stop(context.Context) error
}

// Start starts the fleet. On error, whatever was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Fleet, err error) {
	if cfg.Fetchers <= 0 {
		cfg.Fetchers = 1
	}
	if cfg.Reconcilers <= 0 {
		cfg.Reconcilers = 1
	}
	log := cfg.Logger
	f := &Fleet{}
	defer func() {
		if err != nil {
			_ = f.Stop(context.WithoutCancel(ctx))
		}
	}()

	box, err := secret.NewBox(cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	// Each service gets its own store pool and NATS connection, as it
	// would in its own process.
	openStore := func(name string) (*store.Store, error) {
		st, err := store.Open(ctx, cfg.DatabaseURL, box, log.With().Str("service", name).Logger())
		if err != nil {
			return nil, fmt.Errorf("fleet: %s: %w", name, err)
		}
		f.stops = append(f.stops, func(context.Context) error { st.Close(); return nil })
		return st, nil
	}
	connectBus := func(name string) (*bus.Bus, error) {
		b, err := bus.ConnectWith(ctx, cfg.NATSURL, cfg.Bus, log.With().Str("service", name).Logger())
		if err != nil {
			return nil, fmt.Errorf("fleet: %s: %w", name, err)
		}
		f.stops = append(f.stops, func(context.Context) error { b.Close(); return nil })
		return b, nil
	}
	start := func(name string, svc lifecycle) error {
		if err := svc.Start(ctx); err != nil {
			return fmt.Errorf("fleet: start %s: %w", name, err)
		}
		f.stops = append(f.stops, svc.Stop)
		return nil
	}

	if f.Store, err = openStore("fleet"); err != nil {
		return nil, err
	}
	// One registry for the whole fleet: the workers record into it, and
	// the api serves it.
	mb, err := connectBus("metrics")
	if err != nil {
		return nil, err
	}
	f.Metrics = metrics.New(metrics.Sources{Lag: mb, DeadLetters: mb, Runs: metrics.StoreRuns(f.Store)})

	for i := range cfg.Reconcilers {
		name := fmt.Sprintf("reconciler-%d", i+1)
		st, err := openStore(name)
		if err != nil {
			return nil, err
		}
		b, err := connectBus(name)
		if err != nil {
			return nil, err
		}
		r, err := reconciler.New(reconciler.Config{}, reconciler.Deps{Bus: b, Store: st, Logger: log.With().Str("service", name).Logger(),
			Observer: f.Metrics})
		if err != nil {
			return nil, err
		}
		if err := start(name, r); err != nil {
			return nil, err
		}
	}

	if cfg.GraphBudget.Observer == nil {
		cfg.GraphBudget.Observer = f.Metrics
	}
	for i := range cfg.Fetchers {
		name := fmt.Sprintf("fetcher-%d", i+1)
		st, err := openStore(name)
		if err != nil {
			return nil, err
		}
		b, err := connectBus(name)
		if err != nil {
			return nil, err
		}
		flog := log.With().Str("service", name).Logger()
		fe, err := fetcher.New(fetcher.Config{
			ID:               name,
			GroupConcurrency: cfg.GroupConcurrency,
			EventsInFlight:   cfg.EventsInFlight,
			Observer:         f.Metrics,
			LeaseTTL:         cfg.LeaseTTL,
			// Each fetcher makes its own handle on the shared budget, on
			// its own connection, as replicas in their own processes do.
			Budget:     cfg.GraphBudget,
			Unbudgeted: cfg.GraphUnbudgeted,
			Graph: graph.Config{
				BaseURL:       cfg.GraphBaseURL,
				AuthorityHost: cfg.AuthorityHost,
				Scope:         cfg.GraphScope,
				MaxRetryAfter: cfg.GraphMaxRetryAfter,
				Transport:     cfg.GraphTransport,
				Logger:        flog,
				Observer:      f.Metrics,
			},
		}, fetcher.Deps{Bus: b, Store: st, Logger: flog})
		if err != nil {
			return nil, err
		}
		if err := start(name, fe); err != nil {
			return nil, err
		}
	}

	if cfg.Scheduler {
		st, err := openStore("scheduler")
		if err != nil {
			return nil, err
		}
		b, err := connectBus("scheduler")
		if err != nil {
			return nil, err
		}
		s, err := scheduler.New(cfg.Scheduling, scheduler.Deps{Bus: b, Store: st, Logger: log.With().Str("service", "scheduler").Logger()})
		if err != nil {
			return nil, err
		}
		if err := start("scheduler", s); err != nil {
			return nil, err
		}
	}

	if cfg.Notifier {
		st, err := openStore("notifier")
		if err != nil {
			return nil, err
		}
		n, err := notifier.New(cfg.Notifying, notifier.Deps{Store: st, Logger: log.With().Str("service", "notifier").Logger()})
		if err != nil {
			return nil, err
		}
		if err := start("notifier", n); err != nil {
			return nil, err
		}
	}

	st, err := openStore("api")
	if err != nil {
		return nil, err
	}
	b, err := connectBus("api")
	if err != nil {
		return nil, err
	}
	addr := cfg.APIAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	f.API, err = api.New(api.Config{Addr: addr, AdminToken: cfg.AdminToken},
		api.Deps{Store: st, Bus: b, Logger: log.With().Str("service", "api").Logger(), Metrics: f.Metrics.Handler()})
	if err != nil {
		return nil, err
	}
	if err := start("api", f.API); err != nil {
		return nil, err
	}
	return f, nil
}

// Stop stops every service in the reverse order of their start.
func (f *Fleet) Stop(ctx context.Context) error {
	var errs []error
	for i := len(f.stops) - 1; i >= 0; i-- {
		errs = append(errs, f.stops[i](ctx))
	}
	f.stops = nil
	return errors.Join(errs...)
}
