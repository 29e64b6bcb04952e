// Package reconciler applies the fetchers' sync events to Postgres.
//
// Each event is one step of a run: RunStarted, a Graph page (users, groups,
// a group's direct or transitive members; in a delta run, a page of a
// users or groups delta round), then RunFetched or RunFailed.
// Pages go into the directory mirror idempotently and in any order; after
// every page, and after RunFetched, the reconciler asks the store to
// finalize the run, which succeeds once all of the run's pages are in and
// derives the application side in one transaction (see libs/store).
//
// A run's job may have been fetched more than once (a fetcher died or was
// stopped mid-run); each attempt numbers its pages from its own multiple of
// syncv1.AttemptPageSpan, and RunFetched.first_page names the attempt that
// read everything. Only that attempt's pages decide what the run saw;
// pages of interrupted attempts are applied like any page (older versions
// lose to newer ones) and count for nothing else.
//
// Several reconcilers may consume the same stream: events of one run are
// applied side by side on any of them, and the store serializes what must
// be serialized. An event that can never be applied (malformed, or for a
// tenant or run that does not exist) is dead-lettered at once, and the run
// it names, if any, fails with the reason; a failure that may pass (the
// database is down) is retried by the bus.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// DefaultConcurrency is how many events one reconciler applies at once.
const DefaultConcurrency = 4

// Config tunes a reconciler.
type Config struct {
	// Concurrency is how many events this replica applies at once
	// (default DefaultConcurrency).
	Concurrency int
	// Clock stamps what the reconciler writes (run start and end times,
	// app rows). Default time.Now; tests pass a fixed clock so that two
	// databases fed the same events end up equal.
	Clock func() time.Time
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports every bad field in one error.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("reconciler: Concurrency %d: want 1..256", c.Concurrency))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("reconciler: Clock is nil"))
	}
	return errors.Join(errs...)
}

// Deps are the reconciler's connections. Bus may be nil when only Apply is
// used (tests replaying events); Start needs it.
type Deps struct {
	Bus    *bus.Bus
	Store  *store.Store
	Logger zerolog.Logger
	// Observer hears of pages applied and runs finished, for metrics; nil
	// hears nothing.
	Observer Observer
}

// Observer hears what a reconciler did: a *metrics.Metrics is one.
type Observer interface {
	// PageApplied is told of each data page applied, and how long it took.
	PageApplied(took time.Duration)
	// RunEnded is told of each run this reconciler finished (applied or
	// held), with how long it took from being queued.
	RunEnded(took time.Duration)
}

// Reconciler consumes sync events and applies them.
type Reconciler struct {
	cfg   Config
	bus   *bus.Bus
	store *store.Store
	log   zerolog.Logger
	obs   Observer

	mu       sync.Mutex
	consumer bus.Consumer // nil until Start
}

// New checks the configuration and returns a reconciler; Start makes it
// consume.
func New(cfg Config, deps Deps) (*Reconciler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("reconciler: a store is required")
	}
	return &Reconciler{cfg: cfg, bus: deps.Bus, store: deps.Store, log: deps.Logger, obs: deps.Observer}, nil
}

// Start consumes events until Stop. It returns once the consumer runs;
// ctx bounds only the start: the events in flight are ended by Stop alone.
func (r *Reconciler) Start(ctx context.Context) error {
	if r.bus == nil {
		return errors.New("reconciler: start: no bus")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.consumer != nil {
		return errors.New("reconciler: already started")
	}
	c, err := r.bus.ConsumeEvents(ctx, bus.ConsumeOptions{
		Concurrency: r.cfg.Concurrency,
		// Whatever the bus gives up (a page failing on its last delivery,
		// or stranded by a replica that died on it), the run cannot
		// finish without it: it fails now, with the reason.
		OnDeadLetter: func(ctx context.Context, m proto.Message, reason string) error {
			ev, _ := m.(*syncv1.SyncEvent)
			log := r.log.With().Str("tenant", ev.GetTenantId()).Str("run", ev.GetRunId()).Int32("page", ev.GetPage()).Logger()
			return r.failRunOf(ctx, log, ev, errors.New("it was dead-lettered: "+reason))
		},
	}, r.Apply)
	if err != nil {
		return fmt.Errorf("reconciler: start: %w", err)
	}
	r.consumer = c
	r.log.Info().Int("concurrency", r.cfg.Concurrency).Msg("reconciler started")
	return nil
}

// Stop stops taking events and waits for those in flight until ctx ends.
// When ctx ends first, the events in flight are abandoned (their
// transactions roll back), handed back to the stream for another replica,
// and Stop returns ctx's error.
func (r *Reconciler) Stop(ctx context.Context) error {
	r.mu.Lock()
	c := r.consumer
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := c.Stop(ctx); err != nil {
		return fmt.Errorf("reconciler: stop: %w", err)
	}
	r.log.Info().Msg("reconciler stopped")
	return nil
}

// Ready reports an error unless this replica is consuming events:
// started, not stopped, its consumer alive. A worker's /readyz asks it.
func (r *Reconciler) Ready() error {
	r.mu.Lock()
	c := r.consumer
	r.mu.Unlock()
	return bus.Consuming(c)
}

// Apply applies one event. It returns nil when the event is applied (or
// changes nothing because it was applied before, or its run is over), an
// error made by bus.Permanent when the event can never be applied, and any
// other error when applying it again later may work.
//
// A failure that passes by itself (the database is down, a connection
// broke: store.IsRetryable) is returned as bus.Transient, so that an
// outage of any length delays events without spending their deliveries.
func (r *Reconciler) Apply(ctx context.Context, ev *syncv1.SyncEvent) error {
	err := r.apply(ctx, ev)
	if err != nil && !bus.IsPermanent(err) && store.IsRetryable(err) {
		return bus.Transient(err)
	}
	return err
}

func (r *Reconciler) apply(ctx context.Context, ev *syncv1.SyncEvent) error {
	ref := store.PageRef{TenantID: ev.GetTenantId(), RunID: ev.GetRunId(), RunSeq: ev.GetRunSeq(), Page: ev.GetPage()}
	log := r.log.With().Str("tenant", ref.TenantID).Str("run", ref.RunID).Int32("page", ref.Page).Logger()
	if err := validate(ev); err != nil {
		return r.unappliable(ctx, log, ev, fmt.Errorf("reconciler: invalid event: %w", err))
	}
	at := r.cfg.Clock()
	started := time.Now()

	var err error
	finalize := true
	switch b := ev.GetBody().(type) {
	case *syncv1.SyncEvent_Started:
		finalize = false
		err = r.store.MarkRunStarted(ctx, ref, at)
		if err == nil {
			log.Debug().Str("fetcher", b.Started.GetFetcher()).Int32("attempt", b.Started.GetAttempt()).Msg("run started")
		}
	case *syncv1.SyncEvent_Users:
		err = r.store.ApplyUsersPage(ctx, ref, dirUsers(b.Users.GetUsers()), at)
	case *syncv1.SyncEvent_Groups:
		err = r.store.ApplyGroupsPage(ctx, ref, dirGroups(b.Groups.GetGroups()), at)
	case *syncv1.SyncEvent_Members:
		m := b.Members
		err = r.store.ApplyMembersPage(ctx, ref, store.MembersPage{
			GroupID: m.GetGroupId(), Part: m.GetPart(), Last: m.GetLast(), Members: dirMembers(m.GetMembers()),
		}, at)
	case *syncv1.SyncEvent_TransitiveMembers:
		t := b.TransitiveMembers
		err = r.store.ApplyTransitivePage(ctx, ref, store.TransitivePage{
			GroupID: t.GetGroupId(), Part: t.GetPart(), Last: t.GetLast(), UserIDs: t.GetUserIds(),
		}, at)
	case *syncv1.SyncEvent_UsersDelta:
		d := b.UsersDelta
		err = r.store.ApplyUsersDeltaPage(ctx, ref, dirUsers(d.GetUsers()), dirRemoved(d.GetRemoved()), at)
	case *syncv1.SyncEvent_GroupsDelta:
		d := b.GroupsDelta
		err = r.store.ApplyGroupsDeltaPage(ctx, ref, dirGroups(d.GetGroups()), dirRemoved(d.GetRemoved()),
			membersDeltas(d.GetMembers()), at)
	case *syncv1.SyncEvent_Unreadable:
		u := b.Unreadable
		err = r.store.ApplyUnreadableGroup(ctx, ref, store.UnreadableGroup{
			GroupID: u.GetGroupId(), Status: int(u.GetStatus()), Code: u.GetCode(), Message: u.GetMessage(),
		}, at)
	case *syncv1.SyncEvent_Fetched:
		f := b.Fetched
		err = r.store.MarkRunFetched(ctx, ref, store.Fetched{
			FirstPage: int(f.GetFirstPage()), Pages: int(f.GetPages()), Stats: graphStats(f.GetStats()),
			UsersDeltaLink: f.GetUsersDeltaLink(), GroupsDeltaLink: f.GetGroupsDeltaLink(), CaughtUp: f.GetCaughtUp(),
			UsersFiltered: f.GetUsersFiltered(),
		}, at)
	case *syncv1.SyncEvent_Failed:
		finalize = false
		err = r.store.MarkRunFailed(ctx, ref, b.Failed.GetError(), graphStats(b.Failed.GetStats()), at)
		if err == nil {
			log.Info().Str("error", b.Failed.GetError()).Msg("run failed at the fetcher")
		}
	}
	if err != nil {
		err = fmt.Errorf("reconciler: apply event: %w", err)
		if permanent(err) {
			return r.unappliable(ctx, log, ev, err)
		}
		return err
	}
	if r.obs != nil && ref.Page >= 0 {
		r.obs.PageApplied(time.Since(started))
	}
	if !finalize {
		return nil
	}
	// In a transaction of its own, after the page committed: whichever
	// apply comes last sees the run complete, even when pages of one run
	// are applied on several reconcilers at once. If this fails, the
	// event comes back, its page is found applied, and finalization is
	// tried again.
	done, err := r.store.TryFinalize(ctx, ref.TenantID, ref.RunID, r.cfg.Clock())
	if err != nil {
		if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
			// Deriving the app side can never succeed as the mirror
			// stands: end the run with the reason rather than leave it
			// applying for ever.
			log.Error().Err(err).Msg("finalizing the run failed; marking it failed")
			ferr := r.store.MarkRunFailed(ctx, ref, "finalizing the run failed: "+err.Error(), store.GraphStats{}, r.cfg.Clock())
			if ferr != nil {
				return r.classify(log, "mark run failed", ferr)
			}
			return nil
		}
		return r.classify(log, "finalize run", err)
	}
	if done {
		ev := log.Info()
		if run, err := r.store.GetRun(ctx, ref.TenantID, ref.RunID); err == nil {
			ev = ev.Interface("counts", run.Counts).Int64("seq", run.Seq).Str("status", run.Status)
			if r.obs != nil && run.FinishedAt != nil {
				r.obs.RunEnded(run.FinishedAt.Sub(run.CreatedAt))
			} else if r.obs != nil {
				r.obs.RunEnded(r.cfg.Clock().Sub(run.CreatedAt)) // held: planned now
			}
		}
		ev.Msg("run planned")
	}
	return nil
}

// permanent reports whether a store error means the event can never be
// applied, however often it is tried.
func permanent(err error) bool {
	return errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)
}

// classify turns a store error into what the bus needs: permanent when the
// event can never be applied, plain (redelivered with backoff) otherwise.
func (r *Reconciler) classify(log zerolog.Logger, what string, err error) error {
	err = fmt.Errorf("reconciler: %s: %w", what, err)
	if permanent(err) {
		log.Warn().Err(err).Msg("event cannot be applied")
		return bus.Permanent(err)
	}
	return err
}

// unappliable handles an event that can never be applied (err says why).
// A run missing one of its events could never finish: rather than leave
// it waiting until the stuck-run sweep gives it up, with no word of the
// cause, the run the event names ends failed now with err as its reason,
// and then the event is dead-lettered. The run's failure is recorded
// before the event goes: if that fails for a reason that may pass, the
// event comes back. An event that names no run of its tenant (or names
// it with another seq) changes nothing: it cannot speak for that run.
func (r *Reconciler) unappliable(ctx context.Context, log zerolog.Logger, ev *syncv1.SyncEvent, err error) error {
	if ferr := r.failRunOf(ctx, log, ev, err); ferr != nil {
		return ferr
	}
	return bus.Permanent(err)
}

// failRunOf ends the run ev names as failed, because ev can never be
// applied (err says why). It returns an error only when that may work
// later; an event that names no run (or names it with another seq)
// changes nothing.
func (r *Reconciler) failRunOf(ctx context.Context, log zerolog.Logger, ev *syncv1.SyncEvent, err error) error {
	if ev == nil || !isUUID(ev.GetTenantId()) || !isUUID(ev.GetRunId()) || ev.GetRunSeq() <= 0 {
		log.Warn().Err(err).Msg("event cannot be applied and names no run")
		return nil
	}
	ref := store.PageRef{TenantID: ev.GetTenantId(), RunID: ev.GetRunId(), RunSeq: ev.GetRunSeq()}
	msg := fmt.Sprintf("%s could not be applied, so the run cannot finish: %v", describe(ev), err)
	ferr := r.store.MarkRunFailed(ctx, ref, msg, store.GraphStats{}, r.cfg.Clock())
	switch {
	case ferr == nil:
		log.Error().Err(err).Msg("event cannot be applied; its run is marked failed")
	case permanent(ferr):
		log.Warn().Err(err).AnErr("mark_failed", ferr).Msg("event cannot be applied and its run cannot be failed")
	default:
		return fmt.Errorf("reconciler: %s cannot be applied, and failing its run failed: %w", describe(ev), ferr)
	}
	return nil
}

// describe names an event for people reading a run's error.
func describe(ev *syncv1.SyncEvent) string {
	switch ev.GetBody().(type) {
	case *syncv1.SyncEvent_Started:
		return "the fetcher's RunStarted event"
	case *syncv1.SyncEvent_Fetched:
		return "the fetcher's RunFetched event"
	case *syncv1.SyncEvent_Failed:
		return "the fetcher's RunFailed event"
	case *syncv1.SyncEvent_Users:
		return fmt.Sprintf("users page %d", ev.GetPage())
	case *syncv1.SyncEvent_Groups:
		return fmt.Sprintf("groups page %d", ev.GetPage())
	case *syncv1.SyncEvent_Members:
		return fmt.Sprintf("page %d (direct members of group %s)", ev.GetPage(), ev.GetMembers().GetGroupId())
	case *syncv1.SyncEvent_TransitiveMembers:
		return fmt.Sprintf("page %d (transitive members of group %s)", ev.GetPage(), ev.GetTransitiveMembers().GetGroupId())
	case *syncv1.SyncEvent_UsersDelta:
		return fmt.Sprintf("users delta page %d", ev.GetPage())
	case *syncv1.SyncEvent_GroupsDelta:
		return fmt.Sprintf("groups delta page %d", ev.GetPage())
	case *syncv1.SyncEvent_Unreadable:
		return fmt.Sprintf("page %d (group %s, whose members Graph would not list)", ev.GetPage(), ev.GetUnreadable().GetGroupId())
	}
	return fmt.Sprintf("event %d (no known body)", ev.GetPage())
}
