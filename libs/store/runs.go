package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Run kinds, triggers and statuses as stored.
const (
	KindFull = "full"
	// KindDelta reads only what changed since the tenant's saved delta
	// links (see delta.go).
	KindDelta = "delta"
	// KindAuto asks CreateRun and QueueManualRun to choose full or delta
	// by plan.RunKind, from the tenant's saved links and last full run.
	KindAuto = "auto"

	TriggerManual   = "manual"
	TriggerSchedule = "schedule"

	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusApplying  = "applying"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	// StatusAwaitingApproval: the run's plan is held (HeldReason says
	// why) until an admin approves or rejects it.
	StatusAwaitingApproval = "awaiting_approval"
	// StatusRejected: an admin rejected the run's plan; nothing of it was
	// applied.
	StatusRejected = "rejected"
)

// NewRun is a run the api or the scheduler is about to publish a job for.
type NewRun struct {
	// ID is the run's id; empty means a new random one.
	ID       string
	TenantID string
	Kind     string // KindFull
	Trigger  string // TriggerManual or TriggerSchedule
	// Slot is the schedule slot a scheduled run stands for (required for
	// TriggerSchedule, absent for TriggerManual). A slot has one run.
	Slot *time.Time
	// WholeRead makes a full run list the whole directory even where the
	// tenant's rule would read the scope groups transitively: what an
	// admin who forces a full run asks for (deletions, drift, sizes).
	WholeRead bool
}

// Run is one sync run of a tenant.
type Run struct {
	ID       string
	TenantID string
	// Seq orders the tenant's runs; it grows by one per run.
	Seq  int64
	Kind string
	// ReadStrategy is how a full run reads the directory: ReadFull (the
	// whole of it) or ReadTransitive (its scope groups' nested members
	// only), chosen by plan.ReadStrategy when the run was created; a
	// delta run's is ReadFull.
	ReadStrategy string
	Trigger      string
	Status       string
	// Error says why a failed run failed.
	Error string
	Slot  *time.Time
	// Counts are what the run changed (usersCreated, licensesAssigned, …);
	// empty until it succeeded.
	Counts map[string]int64
	// PagesTotal is the number of data pages the fetcher read, known once
	// it finished reading.
	PagesTotal    *int
	PagesApplied  int
	GraphRequests int64
	Throttled     int64
	GraphRetries  int64
	CreatedAt     time.Time
	StartedAt     *time.Time
	FinishedAt    *time.Time
	// FetchAttempts counts the deliveries of the run's job that began
	// fetching (BeginFetch).
	FetchAttempts int
	// PagesFirst is the number of the first data page of the attempt whose
	// RunFetched was applied; the run's pages are PagesFirst ..
	// PagesFirst+PagesTotal-1. Nil until then.
	PagesFirst *int
	// HeldReason says why the run's plan waits for an admin
	// ("deletion_guard" or "review"); HeldMessage explains it. Empty when
	// the run was never held.
	HeldReason  string
	HeldMessage string
	// PlanSummary counts the run's plan items per action; nil until the
	// run was planned.
	PlanSummary map[string]int64
	// DecidedAt is when an admin approved or rejected the run's plan.
	DecidedAt *time.Time
}

// Terminal reports whether the run is over, one way or the other.
func (r Run) Terminal() bool {
	return r.Status == StatusSucceeded || r.Status == StatusFailed || r.Status == StatusRejected
}

// CreateRun stores a queued run with the tenant's next sequence number.
// When the run's Slot already has a run, it returns that run and an error
// wrapping ErrConflict.
func (s *Store) CreateRun(ctx context.Context, nr NewRun) (Run, error) {
	if nr.ID == "" {
		nr.ID = newID()
	}
	if err := nr.validate(); err != nil {
		return Run{}, fmt.Errorf("store: create run: %w", err)
	}
	if nr.Slot != nil {
		// Most duplicates are a second scheduler replica asking for the
		// same slot: answer them without taking a sequence number.
		if r, err := s.runBySlot(ctx, nr.TenantID, *nr.Slot); err == nil {
			return r, fmt.Errorf("store: create run: slot %s of tenant %s has run %s: %w",
				nr.Slot.UTC().Format(time.RFC3339), nr.TenantID, r.ID, ErrConflict)
		} else if !errors.Is(err, ErrNotFound) {
			return Run{}, err
		}
	}
	var run Run
	err := s.inTx(ctx, "create run", func(q *dbsqlc.Queries) error {
		var err error
		run, err = s.insertRun(ctx, q, nr)
		return err
	})
	if errors.Is(err, ErrConflict) && nr.Slot != nil {
		// Another replica created the slot's run between our look and
		// our insert.
		if r, err2 := s.runBySlot(ctx, nr.TenantID, *nr.Slot); err2 == nil {
			return r, err
		}
	}
	if err != nil {
		return Run{}, err
	}
	return run, nil
}

// QueueManualRun is what a manual trigger does: it returns the tenant's
// queued run that no fetcher has begun yet, when there is one, and
// otherwise creates a manual run; created tells which. A waiting run
// reads the directory when it starts, so it already answers the trigger;
// an admin clicking "sync" twice, or right after connecting (when the
// scheduler queues the first run), gets one run, not a queue of them.
// A run already fetching may have read past a change the admin just
// made, so it does not count: a new run is queued behind it.
func (s *Store) QueueManualRun(ctx context.Context, tenantID string) (run Run, created bool, err error) {
	return s.QueueManualRunOf(ctx, tenantID, KindAuto)
}

// QueueManualRunOf is QueueManualRun for a run of kind (KindFull to read
// the whole directory whatever the rule would choose, with every user and
// group listed even for a tenant read transitively). A waiting run of
// another kind still answers the trigger.
func (s *Store) QueueManualRunOf(ctx context.Context, tenantID, kind string) (run Run, created bool, err error) {
	nr := NewRun{ID: newID(), TenantID: tenantID, Kind: kind, Trigger: TriggerManual, WholeRead: kind == KindFull}
	if err := nr.validate(); err != nil {
		return Run{}, false, fmt.Errorf("store: queue manual run: %w", err)
	}
	err = s.inTx(ctx, "queue manual run", func(q *dbsqlc.Queries) error {
		if _, err := q.LockTenantRow(ctx, nr.TenantID); err != nil {
			return fmt.Errorf("tenant %s: %w", nr.TenantID, err)
		}
		waiting, err := q.WaitingRun(ctx, nr.TenantID)
		if err == nil {
			created = false
			run, err = runFrom(waiting, waiting.PagesApplied)
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if run, err = s.insertRun(ctx, q, nr); err != nil {
			return err
		}
		created = true
		return recordActivity(ctx, q, nr.TenantID, ActivityTriggerSync, nr.TenantID, nil, nil, run.ID, run.CreatedAt)
	})
	if err != nil {
		return Run{}, false, err
	}
	return run, created, nil
}

// insertRun stores a validated new run with the tenant's next sequence
// number, taking the tenant row's lock until tx ends.
func (s *Store) insertRun(ctx context.Context, q *dbsqlc.Queries, nr NewRun) (Run, error) {
	next, err := q.NextRunSeq(ctx, nr.TenantID)
	if err != nil {
		return Run{}, fmt.Errorf("tenant %s: %w", nr.TenantID, err)
	}
	if next.Disconnected {
		return Run{}, fmt.Errorf("tenant %s: %w", nr.TenantID, ErrDisconnected)
	}
	now := s.clock()
	// A full run's read strategy; a transitive one makes every run of
	// the tenant full.
	strategy := ReadFull
	if nr.Kind != KindDelta {
		settings, err := tenantFrom(q.GetTenant(ctx, nr.TenantID))
		if err != nil {
			return Run{}, fmt.Errorf("tenant %s: settings: %w", nr.TenantID, err)
		}
		c, err := readStrategy(ctx, q, nr.TenantID, settings.Settings, now, false)
		if err != nil {
			return Run{}, fmt.Errorf("tenant %s: choose the run's read strategy: %w", nr.TenantID, err)
		}
		strategy = c.Strategy
		if nr.WholeRead {
			strategy = ReadFull
		}
	}
	if nr.Kind == KindAuto {
		f, err := q.RunKindFacts(ctx, nr.TenantID)
		if err != nil {
			return Run{}, fmt.Errorf("tenant %s: choose the run's kind: %w", nr.TenantID, err)
		}
		facts := plan.RunKindFacts{Links: int(f.Links), LinksTakenAt: f.LinksTakenAt, LastFullAt: f.LastFullAt,
			UnreadableGroups: int(f.UnreadableGroups), ReadsTransitive: strategy == ReadTransitive}
		if facts.LastFullAt.Equal(time.Unix(0, 0)) {
			facts.LastFullAt = time.Time{}
		}
		nr.Kind, _ = plan.RunKind(facts, now)
	}
	if nr.Kind == KindDelta {
		strategy = ReadFull
	}
	r, err := q.CreateRun(ctx, dbsqlc.CreateRunParams{TenantID: nr.TenantID, ID: nr.ID, Seq: next.LastRunSeq,
		Kind: nr.Kind, Trigger: nr.Trigger, Slot: nr.Slot, CreatedAt: now, ReadStrategy: strategy})
	if err != nil {
		return Run{}, err
	}
	return runFrom(r, r.PagesApplied)
}

func (nr *NewRun) validate() error {
	var errs []error
	if id, ok := canonicalID(nr.ID); ok {
		nr.ID = id
	} else {
		errs = append(errs, invalidf("run id %q is not a UUID", nr.ID))
	}
	if id, ok := canonicalID(nr.TenantID); ok {
		nr.TenantID = id
	} else {
		errs = append(errs, invalidf("tenant id %q is not a UUID", nr.TenantID))
	}
	if nr.Kind != KindFull && nr.Kind != KindDelta && nr.Kind != KindAuto {
		errs = append(errs, invalidf("kind %q is not %q, %q or %q", nr.Kind, KindFull, KindDelta, KindAuto))
	}
	switch nr.Trigger {
	case TriggerManual:
		if nr.Slot != nil {
			errs = append(errs, invalidf("a manual run has no schedule slot"))
		}
	case TriggerSchedule:
		if nr.Slot == nil {
			errs = append(errs, invalidf("a scheduled run needs its slot"))
		}
	default:
		errs = append(errs, invalidf("trigger %q is neither %q nor %q", nr.Trigger, TriggerManual, TriggerSchedule))
	}
	return errors.Join(errs...)
}

// GetRun returns a run of a tenant, or ErrNotFound (also when the run
// belongs to another tenant).
func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (Run, error) {
	if !isUUID(tenantID) || !isUUID(runID) {
		return Run{}, fmt.Errorf("store: get run %q of tenant %q: %w", runID, tenantID, ErrNotFound)
	}
	row, err := s.q.GetRun(ctx, dbsqlc.GetRunParams{TenantID: tenantID, RunID: runID, AttemptPageSpan: AttemptPageSpan})
	if err != nil {
		return Run{}, translate(err, "get run "+runID)
	}
	return runFrom(row.SyncRun, row.CurrentPagesApplied)
}

func (s *Store) runBySlot(ctx context.Context, tenantID string, slot time.Time) (Run, error) {
	row, err := s.q.GetRunBySlot(ctx, dbsqlc.GetRunBySlotParams{TenantID: tenantID, Slot: slot, AttemptPageSpan: AttemptPageSpan})
	if err != nil {
		return Run{}, translate(err, "get run of slot")
	}
	return runFrom(row.SyncRun, row.CurrentPagesApplied)
}

// ListRuns returns up to limit runs of a tenant, newest first, with a
// sequence number below beforeSeq (0: from the newest). Pass the last
// run's Seq to get the next page.
func (s *Store) ListRuns(ctx context.Context, tenantID string, beforeSeq int64, limit int) ([]Run, error) {
	if !isUUID(tenantID) {
		return nil, fmt.Errorf("store: list runs of %q: %w", tenantID, ErrNotFound)
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	rows, err := s.q.ListRuns(ctx, dbsqlc.ListRunsParams{TenantID: tenantID, BeforeSeq: beforeSeq,
		AttemptPageSpan: AttemptPageSpan, MaxRows: int32(clampLimit(limit))})
	if err != nil {
		return nil, translate(err, "list runs")
	}
	runs, err := runsFrom(rows, func(r dbsqlc.ListRunsRow) (dbsqlc.SyncRun, int32) { return r.SyncRun, r.CurrentPagesApplied })
	if err != nil {
		return nil, translate(err, "list runs")
	}
	if len(runs) == 0 {
		if err := s.tenantExists(ctx, tenantID); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// ListStaleQueuedRuns returns every run, of any tenant, still queued since
// before olderThan that no fetcher has begun (BeginFetch): its job may have
// been lost between the insert and the publish, and can be published again
// (the job's message id makes a duplicate vanish). A run a fetcher began
// stays queued only until the reconciler applies its RunStarted; its job
// is not lost, and publishing it again would only start a needless
// attempt.
func (s *Store) ListStaleQueuedRuns(ctx context.Context, olderThan time.Time) ([]Run, error) {
	rows, err := s.q.ListStaleQueuedRuns(ctx, olderThan)
	if err != nil {
		return nil, translate(err, "list stale queued runs")
	}
	runs, err := runsFrom(rows, func(r dbsqlc.SyncRun) (dbsqlc.SyncRun, int32) { return r, r.PagesApplied })
	return runs, translate(err, "list stale queued runs")
}

// ListStuckRuns returns every run, of any tenant, that a fetcher began
// but that has not moved since before noProgressSince (no RunStarted,
// RunFetched or page applied) while no fetcher holds its tenant's lease.
// Normally such a run is only waiting for events still in the stream;
// the caller checks that before giving it up (FailStuckRun).
func (s *Store) ListStuckRuns(ctx context.Context, noProgressSince time.Time) ([]Run, error) {
	rows, err := s.q.ListStuckRuns(ctx, dbsqlc.ListStuckRunsParams{Since: noProgressSince, Now: s.clock(),
		AttemptPageSpan: AttemptPageSpan})
	if err != nil {
		return nil, translate(err, "list stuck runs")
	}
	runs, err := runsFrom(rows, func(r dbsqlc.ListStuckRunsRow) (dbsqlc.SyncRun, int32) { return r.SyncRun, r.CurrentPagesApplied })
	return runs, translate(err, "list stuck runs")
}

// FailStuckRun ends the run as failed with msg if it is still stuck as
// ListStuckRuns defines it, judged again under the tenant's lock, so that
// a page applied or a lease taken since the listing saves the run. It
// reports whether the run was failed.
func (s *Store) FailStuckRun(ctx context.Context, tenantID, runID string, noProgressSince time.Time, msg string) (bool, error) {
	if !isUUID(tenantID) || !isUUID(runID) {
		return false, fmt.Errorf("store: fail stuck run %q of tenant %q: %w", runID, tenantID, ErrNotFound)
	}
	if strings.TrimSpace(msg) == "" {
		return false, invalidf("fail stuck run %s: a message is required", runID)
	}
	failed := false
	err := s.inTx(ctx, "fail stuck run", func(q *dbsqlc.Queries) error {
		failed = false // a retried transaction starts over
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		now := s.clock()
		var err error
		failed, err = q.RunStuck(ctx, dbsqlc.RunStuckParams{TenantID: tenantID, RunID: runID, Since: noProgressSince, Now: now})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return failRun(ctx, q, tenantID, runID, msg, GraphStats{}, now, true)
	})
	return failed, err
}

// BeginFetch counts a new fetch attempt of a run and returns its number,
// from 1. A fetcher calls it once it holds the tenant's lease and before it
// publishes anything: the attempt's number decides its page numbers (see
// AttemptPageSpan), so that pages of an earlier, interrupted attempt
// never pass for this one's. A run that no longer needs fetching (applying,
// succeeded or failed) gets ErrPastFetching: its job has nothing left to do.
func (s *Store) BeginFetch(ctx context.Context, tenantID, runID string) (int, error) {
	if !isUUID(tenantID) || !isUUID(runID) {
		return 0, fmt.Errorf("store: begin fetch of run %q of tenant %q: %w", runID, tenantID, ErrNotFound)
	}
	ids := dbsqlc.BeginFetchParams{TenantID: tenantID, RunID: runID}
	attempt, err := s.q.BeginFetch(ctx, ids)
	if errors.Is(err, pgx.ErrNoRows) {
		status, err := s.q.RunStatus(ctx, dbsqlc.RunStatusParams(ids))
		if err != nil {
			return 0, translate(err, "begin fetch of run "+runID)
		}
		return 0, fmt.Errorf("store: begin fetch of run %s: run is %s: %w", runID, status, ErrPastFetching)
	}
	if err != nil {
		return 0, translate(err, "begin fetch of run "+runID)
	}
	return int(attempt), nil
}

// runFrom is a stored run as the store hands it out, with pagesApplied
// the pages applied so far (the row's own count is only kept up to date
// once the run is over).
func runFrom(m dbsqlc.SyncRun, pagesApplied int32) (Run, error) {
	r := Run{
		ID: m.ID, TenantID: m.TenantID, Seq: m.Seq, Kind: m.Kind, ReadStrategy: m.ReadStrategy, Trigger: m.Trigger, Status: m.Status,
		Error: m.Error, Slot: m.Slot, PagesTotal: intPtr(m.PagesTotal), PagesApplied: int(pagesApplied),
		GraphRequests: m.GraphRequests, Throttled: m.GraphThrottled, GraphRetries: m.GraphRetries,
		CreatedAt: m.CreatedAt, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt,
		FetchAttempts: int(m.FetchAttempts), PagesFirst: intPtr(m.PagesFirst), HeldMessage: m.HeldMessage,
		DecidedAt: m.DecidedAt,
	}
	if m.HeldReason != nil {
		r.HeldReason = *m.HeldReason
	}
	if err := json.Unmarshal(m.Counts, &r.Counts); err != nil {
		return Run{}, fmt.Errorf("counts of run %s: %w", m.ID, err)
	}
	if r.Counts == nil {
		r.Counts = map[string]int64{}
	}
	if m.PlanSummary != nil {
		if err := json.Unmarshal(m.PlanSummary, &r.PlanSummary); err != nil {
			return Run{}, fmt.Errorf("plan summary of run %s: %w", m.ID, err)
		}
	}
	return r, nil
}

// runsFrom converts the rows of a query that lists runs; split says where
// a row keeps the run and its pages applied.
func runsFrom[R any](rows []R, split func(R) (dbsqlc.SyncRun, int32)) ([]Run, error) {
	out := make([]Run, 0, len(rows))
	for _, row := range rows {
		r, err := runFrom(split(row))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func intPtr(p *int32) *int {
	if p == nil {
		return nil
	}
	v := int(*p)
	return &v
}

// clampLimit keeps page sizes sane: 0 or less means 100, at most 1000.
func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > 1000:
		return 1000
	}
	return limit
}

// RunStats is what the store tells operators about runs: how many ended
// in each final status (succeeded, failed, rejected), and when each
// tenant's newest succeeded run finished.
type RunStats struct {
	Ended       map[string]uint64
	LastSuccess map[string]time.Time
}

// RunStats reads RunStats across tenants, for the metrics a scrape
// reads. It scans the runs table: fine at a scrape every few seconds
// for the runs a fleet keeps.
func (s *Store) RunStats(ctx context.Context) (RunStats, error) {
	out := RunStats{Ended: map[string]uint64{}, LastSuccess: map[string]time.Time{}}
	counts, err := s.q.EndedRunCounts(ctx)
	if err != nil {
		return RunStats{}, translate(err, "run stats")
	}
	for _, c := range counts {
		out.Ended[c.Status] = uint64(c.N)
	}
	last, err := s.q.LastSuccessByTenant(ctx)
	if err != nil {
		return RunStats{}, translate(err, "run stats")
	}
	for _, l := range last {
		out.LastSuccess[l.TenantID] = l.FinishedAt
	}
	return out, nil
}
