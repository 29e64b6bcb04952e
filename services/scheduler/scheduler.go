// Package scheduler publishes the sync jobs of tenants that are due.
//
// Each tenant is synced by its schedule (plan.Schedule, the setting
// "schedule"): every N minutes (24 h by default), daily at a local time
// in a time zone, or never (manual: only an admin starts its runs).
// Interval slots are spread over the interval by a hash of the tenant
// id, so a thousand tenants connected on the same day do not all start
// at midnight; daily slots follow the zone's clocks, changes of clocks
// included (plan.Schedule.Next). The current slot is the latest slot not
// after now; a tenant whose last scheduled slot is older, or that never
// had one (a tenant connected a moment ago), is due, unless a run of it
// that has not failed was created in the current slot: an admin's manual
// sync covers the slot, and a scheduled run queued beside it would only
// read the directory again (and could finish first, superseding it).
//
// Several replicas may run. For a due slot each creates the slot's run,
// and the store lets only one succeed (one run per tenant and slot); the
// job is published with the message id "sched/<tenant>/<slot unix>", so
// replicas that publish anyway are dropped by JetStream's dedup window.
//
// The scheduler also sweeps: a run still queued after a grace period may
// have lost its job (a process died between recording the run and
// publishing, or the api answered 503), so its job is published again,
// unless it is still waiting in the work queue, or a fetcher already began
// fetching it (store.BeginFetch; the run shows queued only until the
// reconcilers apply its RunStarted).
//
// And it gives up runs that are stuck: a run a fetcher began that has not
// moved for StuckAfter (no RunStarted, RunFetched or page applied), while
// no fetcher holds its tenant's lease and nothing of its tenant is left
// in the work queues, can no longer finish: its job ran out of deliveries
// while NATS was down, or a page of it was dead-lettered. It is ended as
// failed with a message saying so, rather than showing running forever;
// the tenant's next run reads the whole directory again.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// Defaults of Config.
const (
	DefaultTickEvery   = 30 * time.Second
	DefaultStaleQueued = 2 * time.Minute
	DefaultStuckAfter  = 15 * time.Minute
)

// Config tunes the scheduler.
type Config struct {
	// TickEvery is the time between two passes.
	TickEvery time.Duration
	// StaleQueued is how long a run may stay queued before its job is
	// published again.
	StaleQueued time.Duration
	// StuckAfter is how long a begun run may go without progress, with
	// nothing of its tenant in flight, before it is given up.
	StuckAfter time.Duration
	// Clock tells the time; tests move it by hand. Default time.Now.
	Clock func() time.Time
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.TickEvery == 0 {
		c.TickEvery = DefaultTickEvery
	}
	if c.StaleQueued == 0 {
		c.StaleQueued = DefaultStaleQueued
	}
	if c.StuckAfter == 0 {
		c.StuckAfter = DefaultStuckAfter
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports every bad field in one error.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"TickEvery", c.TickEvery}, {"StaleQueued", c.StaleQueued}, {"StuckAfter", c.StuckAfter}} {
		if f.d <= 0 {
			errs = append(errs, fmt.Errorf("scheduler: %s %s: want more than 0", f.name, f.d))
		}
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("scheduler: Clock is nil"))
	}
	return errors.Join(errs...)
}

// Deps are the scheduler's collaborators.
type Deps struct {
	Bus    *bus.Bus
	Store  *store.Store
	Logger zerolog.Logger
}

// Scheduler finds due tenants and publishes their jobs.
type Scheduler struct {
	cfg   Config
	bus   *bus.Bus
	store *store.Store
	log   zerolog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks the configuration and builds a scheduler.
func New(cfg Config, deps Deps) (*Scheduler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil || deps.Store == nil {
		return nil, errors.New("scheduler: a bus and a store are required")
	}
	return &Scheduler{cfg: cfg, bus: deps.Bus, store: deps.Store, log: deps.Logger}, nil
}

// Start runs a first pass at once, then one every TickEvery, in the
// background, until Stop. ctx bounds only the start: the passes go on
// after it ends, until Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("scheduler: already started")
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go s.loop(ctx, s.done)
	s.log.Info().Dur("tick_every", s.cfg.TickEvery).Dur("stale_queued", s.cfg.StaleQueued).
		Dur("stuck_after", s.cfg.StuckAfter).Msg("scheduler started")
	return nil
}

func (s *Scheduler) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.TickEvery)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("scheduler pass incomplete; the next pass tries again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop ends the background passes, waiting for the one in progress until
// ctx is done. Whatever a pass left half-done (a run recorded, its job not
// yet published) is finished by the next pass of any replica.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		s.log.Info().Msg("scheduler stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler: stop: %w", ctx.Err())
	}
}

// Tick makes one pass: it creates and publishes the runs of due tenants,
// publishes again the jobs of runs stuck in queued, and gives up runs
// that can no longer finish. It goes on past one tenant's failure and
// returns every error it met.
func (s *Scheduler) Tick(ctx context.Context) error {
	now := s.cfg.Clock()
	schedules, err := s.store.ListTenantSchedules(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	var errs []error
	for _, ts := range schedules {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.schedule(ctx, ts, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.sweep(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := s.giveUpStuck(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// schedule creates and publishes the tenant's run for the current slot
// when it does not have one yet.
func (s *Scheduler) schedule(ctx context.Context, ts store.TenantSchedule, now time.Time) error {
	slot, ok := ts.Schedule.Slot(ts.TenantID, now)
	if !ok {
		return nil // manual: never scheduled
	}
	if ts.LastScheduledSlot != nil && !ts.LastScheduledSlot.Before(slot) {
		return nil
	}
	if ts.LastRunCreatedAt != nil && !ts.LastRunCreatedAt.Before(slot) {
		return nil // a manual run covers this slot
	}
	log := s.log.With().Str("tenant", ts.TenantID).Time("slot", slot).Logger()
	run, err := s.store.CreateRun(ctx, store.NewRun{
		TenantID: ts.TenantID, Kind: store.KindAuto, Trigger: store.TriggerSchedule, Slot: &slot,
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another replica got the slot first. Publishing too costs
		// nothing (same message id) and covers a replica that died
		// before it published.
		if run.ID == "" || run.Status != store.StatusQueued {
			return nil
		}
		log.Debug().Str("run", run.ID).Msg("slot already has a run")
	case errors.Is(err, store.ErrNotFound):
		return nil // the tenant was removed since the listing
	case err != nil:
		return fmt.Errorf("scheduler: create run of tenant %s for slot %s: %w", ts.TenantID, slot.Format(time.RFC3339), err)
	}
	log = log.With().Str("run", run.ID).Logger()
	job := bus.NewJob(run.TenantID, run.ID, run.Seq, run.Kind == store.KindDelta, run.Trigger == store.TriggerSchedule,
		run.CreatedAt)
	if err := s.bus.PublishJobWithID(ctx, job, SlotMsgID(ts.TenantID, slot)); err != nil {
		// The run stays queued; the sweep publishes it later.
		return fmt.Errorf("scheduler: publish job of run %s: %w", run.ID, err)
	}
	log.Info().Int64("run_seq", run.Seq).Msg("scheduled run published")
	return nil
}

// sweep publishes again the jobs of runs queued for longer than
// StaleQueued that no fetcher began and whose job is no longer in the
// work queue.
func (s *Scheduler) sweep(ctx context.Context, now time.Time) error {
	runs, err := s.store.ListStaleQueuedRuns(ctx, now.Add(-s.cfg.StaleQueued))
	if err != nil {
		return fmt.Errorf("scheduler: sweep: %w", err)
	}
	var errs []error
	for _, run := range runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log := s.log.With().Str("tenant", run.TenantID).Str("run", run.ID).Logger()
		queued, err := s.bus.JobQueued(ctx, run.TenantID, run.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler: sweep: %w", err))
			continue
		}
		if queued {
			// Fetchers are behind, not the job lost.
			log.Debug().Msg("queued run's job still waits for a fetcher")
			continue
		}
		job := bus.NewJob(run.TenantID, run.ID, run.Seq, run.Kind == store.KindDelta, run.Trigger == store.TriggerSchedule,
			run.CreatedAt)
		if err := s.bus.PublishJob(ctx, job); err != nil {
			errs = append(errs, fmt.Errorf("scheduler: sweep: publish job of run %s: %w", run.ID, err))
			continue
		}
		log.Warn().Time("created_at", run.CreatedAt).Msg("queued run had no job; published it again")
	}
	return errors.Join(errs...)
}

// giveUpStuck fails the runs that stopped moving for StuckAfter while
// nothing of their tenant is in flight.
func (s *Scheduler) giveUpStuck(ctx context.Context, now time.Time) error {
	since := now.Add(-s.cfg.StuckAfter)
	runs, err := s.store.ListStuckRuns(ctx, since)
	if err != nil {
		return fmt.Errorf("scheduler: stuck runs: %w", err)
	}
	var errs []error
	for _, run := range runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log := s.log.With().Str("tenant", run.TenantID).Str("run", run.ID).Str("status", run.Status).Logger()
		jobs, events, err := s.bus.TenantInFlight(ctx, run.TenantID)
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler: stuck runs: %w", err))
			continue
		}
		if jobs+events > 0 {
			// Fetchers or reconcilers are behind, or a retry is due.
			log.Debug().Uint64("jobs", jobs).Uint64("events", events).Msg("quiet run still has work in flight")
			continue
		}
		msg := stuckMessage(run, s.cfg.StuckAfter)
		failed, err := s.store.FailStuckRun(ctx, run.TenantID, run.ID, since, msg)
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler: give up stuck run %s: %w", run.ID, err))
			continue
		}
		if failed {
			log.Warn().Int("fetch_attempts", run.FetchAttempts).Int("pages_applied", run.PagesApplied).
				Msg("run made no progress and had nothing in flight; failed it")
		}
	}
	return errors.Join(errs...)
}

// stuckMessage is the error a stuck run ends with: what it got to, for
// the admin who reads it, and what happens next.
func stuckMessage(run store.Run, after time.Duration) string {
	got := "no page of it was applied"
	switch {
	case run.PagesTotal != nil:
		got = fmt.Sprintf("%d of its %d pages were applied", run.PagesApplied, *run.PagesTotal)
	case run.PagesApplied > 0:
		got = fmt.Sprintf("%d pages were applied before fetching stopped", run.PagesApplied)
	}
	return fmt.Sprintf("the run stopped making progress: nothing happened to it for %s and none of its work "+
		"was left in flight (%s, after %d fetch attempts); it was given up, and the next run reads the whole "+
		"directory again", after, got, run.FetchAttempts)
}

// Slot returns the slot at now of a tenant synced every interval: the
// latest of its slot boundaries (every interval, shifted by an offset
// derived from the tenant id) that is not after now (plan.IntervalSlot).
func Slot(tenantID string, interval time.Duration, now time.Time) time.Time {
	return plan.IntervalSlot(tenantID, interval, now)
}

// SlotMsgID is the message id of a scheduled job: one per tenant and slot.
func SlotMsgID(tenantID string, slot time.Time) string {
	return "sched/" + tenantID + "/" + strconv.FormatInt(slot.Unix(), 10)
}
