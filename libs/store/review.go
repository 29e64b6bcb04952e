package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Errors of the review of held plans. Both are also ErrConflict.
var (
	// ErrNotHeld means the run's plan is not waiting for an admin.
	ErrNotHeld = fmt.Errorf("%w: the run is not awaiting approval", ErrConflict)
	// ErrStalePlan means the plan was built on data that has changed
	// since: approving it would apply changes nobody reviewed.
	ErrStalePlan = fmt.Errorf("%w: the plan is out of date", ErrConflict)
)

// ApprovePlan applies a held run's stored plan, in one transaction, as the
// run would have if nothing had held it: the app side ends as an auto-mode
// run of the same directory leaves it. A plan older than what it was
// built on is refused with ErrStalePlan and a message saying why: a later
// run was planned, or the app side or the tenant's settings changed.
func (s *Store) ApprovePlan(ctx context.Context, tenantID, runID string) (Run, error) {
	return s.decide(ctx, tenantID, runID, true)
}

// RejectPlan ends a held run as rejected: nothing of its plan is applied.
func (s *Store) RejectPlan(ctx context.Context, tenantID, runID string) (Run, error) {
	return s.decide(ctx, tenantID, runID, false)
}

func (s *Store) decide(ctx context.Context, tenantID, runID string, approve bool) (Run, error) {
	what := "reject plan of run " + runID
	if approve {
		what = "approve plan of run " + runID
	}
	ref := PageRef{TenantID: tenantID, RunID: runID, RunSeq: 1, Page: -1}
	if err := ref.validate(false); err != nil {
		return Run{}, fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	var applied *planResult
	err := s.inTx(ctx, what, func(q *dbsqlc.Queries) error {
		applied = nil
		if err := lockTenant(ctx, q, ref.TenantID, true); err != nil {
			return err
		}
		st, err := q.RunPlanState(ctx, dbsqlc.RunPlanStateParams{TenantID: ref.TenantID, RunID: ref.RunID})
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s of tenant %s: %w", ref.RunID, ref.TenantID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if st.Status != StatusAwaitingApproval {
			return fmt.Errorf("%w: run %d is %s", ErrNotHeld, st.Seq, st.Status)
		}
		now := s.clock()
		ref.RunSeq = st.Seq
		decided := dbsqlc.DecideRunParams{TenantID: ref.TenantID, RunID: ref.RunID, Status: StatusRejected, At: now}
		pages := dbsqlc.DeleteRunPagesParams{TenantID: ref.TenantID, RunID: ref.RunID}
		if !approve {
			if err := q.DecideRun(ctx, decided); err != nil {
				return err
			}
			if err := recordActivity(ctx, q, ref.TenantID, ActivityRejectPlan, ref.RunID, nil, nil, ref.RunID, now); err != nil {
				return err
			}
			return q.DeleteRunPages(ctx, pages)
		}
		if newer := st.NewerPlanned; newer > 0 {
			return fmt.Errorf("%w: run %d was planned after this one and replaces its plan; review run %d instead",
				ErrStalePlan, newer, newer)
		}
		var planVersion int64
		if st.PlanAppVersion != nil {
			planVersion = *st.PlanAppVersion
		}
		if st.AppVersion != planVersion {
			when := ""
			if st.AppChangedAt != nil {
				when = " on " + st.AppChangedAt.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("%w: %s%s, after this plan was made; sync again for a fresh plan",
				ErrStalePlan, st.AppChange, when)
		}
		if st.PagesFirst == nil || st.PagesTotal == nil {
			return fmt.Errorf("run %d has no fetched pages: %w", st.Seq, ErrInvalid)
		}
		pr := pageRange{lo: *st.PagesFirst, hi: *st.PagesFirst + *st.PagesTotal}
		t, err := loadPlanTenant(ctx, q, ref, pr)
		if err != nil {
			return err
		}
		res := planResult{tenant: t, counts: map[string]int64{}}
		if err := json.Unmarshal(st.PlanCounts, &res.counts); err != nil {
			return fmt.Errorf("plan counts of run %d: %w", st.Seq, err)
		}
		if res.summary, err = planSummary(ctx, q, ref); err != nil {
			return err
		}
		if err := applyPlan(ctx, q, ref, pr, res, now); err != nil {
			return err
		}
		applied = &res
		decided.Status = StatusSucceeded
		if decided.Counts, err = json.Marshal(res.counts); err != nil {
			return err
		}
		if err := q.DecideRun(ctx, decided); err != nil {
			return err
		}
		if err := recordActivity(ctx, q, ref.TenantID, ActivityApprovePlan, ref.RunID, nil, nil, ref.RunID, now); err != nil {
			return err
		}
		return q.DeleteRunPages(ctx, pages)
	})
	if err != nil {
		return Run{}, err
	}
	if applied != nil {
		s.tidyAfterPlan(ctx, ref.logger(s.log), *applied, true)
	}
	return s.GetRun(ctx, ref.TenantID, ref.RunID)
}

// planSummary counts a stored plan's items per action.
func planSummary(ctx context.Context, q *dbsqlc.Queries, ref PageRef) (plan.Summary, error) {
	rows, err := q.PlanItemCounts(ctx, dbsqlc.PlanItemCountsParams{TenantID: ref.TenantID, RunID: ref.RunID})
	if err != nil {
		return nil, err
	}
	sum := plan.Summary{}
	for _, r := range rows {
		sum[plan.Action(r.Action)] = r.Items
	}
	return sum, nil
}

// PlanItem is one change of a run's plan, as the API shows it.
type PlanItem struct {
	Seq         int
	Action      string
	EntraID     string
	GroupID     string
	Role        string
	DisplayName string
	Before      map[string]any
	After       map[string]any
	Reason      string
}

// ListPlanItems returns up to limit items of a run's plan after item
// seq `after` (-1: from the start), in planned order, and the cursor of
// the next page (-1 at the end).
func (s *Store) ListPlanItems(ctx context.Context, tenantID, runID string, after, limit int) ([]PlanItem, int, error) {
	if !isUUID(tenantID) || !isUUID(runID) {
		return nil, -1, fmt.Errorf("store: plan of run %q: %w", runID, ErrNotFound)
	}
	limit = clampLimit(limit)
	// Item seqs are int32s from 0: a cursor outside that range means
	// "from the start" or "nothing after".
	after = min(max(after, -1), math.MaxInt32)
	rows, err := s.q.ListPlanItems(ctx, dbsqlc.ListPlanItemsParams{TenantID: tenantID, RunID: runID, After: int32(after),
		MaxRows: int32(limit + 1)})
	if err != nil {
		return nil, -1, translate(err, "list plan items")
	}
	if len(rows) == 0 {
		// Tell "no items" from "no such run" only when there is nothing
		// to show: a page of items proves the run.
		if _, err := s.GetRun(ctx, tenantID, runID); err != nil {
			return nil, -1, err
		}
	}
	items := make([]PlanItem, len(rows))
	for i, r := range rows {
		items[i] = PlanItem{Seq: int(r.Seq), Action: r.Action, EntraID: r.EntraID, GroupID: r.GroupID, Role: r.Role,
			DisplayName: r.DisplayName, Reason: r.Reason}
		if err := unmarshalFields(r.Before, &items[i].Before); err != nil {
			return nil, -1, translate(err, "list plan items")
		}
		if err := unmarshalFields(r.After, &items[i].After); err != nil {
			return nil, -1, translate(err, "list plan items")
		}
	}
	if len(items) <= limit {
		return items, -1, nil
	}
	items = items[:limit]
	return items, items[limit-1].Seq, nil
}

// Notification is a notification task of a tenant.
type Notification struct {
	ID          string
	Kind        string
	RunID       string
	Recipients  []string
	Subject     string
	Text        string
	CreatedAt   time.Time
	DeliveredAt *time.Time
	// Status is NotificationPending, NotificationDelivered or
	// NotificationFailed.
	Status string
	// Attempts counts the deliveries begun.
	Attempts int
	// LastError is why the last attempt did not deliver it; empty once
	// delivered.
	LastError     string
	FailedAt      *time.Time
	NextAttemptAt time.Time
}

// NotificationCursor is where a page of notifications ends.
type NotificationCursor struct {
	CreatedAt time.Time
	ID        string
}

// ListNotifications returns up to limit notification tasks of a tenant,
// newest first, before the cursor (nil: from the newest), and the cursor
// of the next page (nil at the end).
func (s *Store) ListNotifications(ctx context.Context, tenantID string, before *NotificationCursor, limit int) ([]Notification, *NotificationCursor, error) {
	if !isUUID(tenantID) {
		return nil, nil, fmt.Errorf("store: notifications of %q: %w", tenantID, ErrNotFound)
	}
	if err := s.tenantExists(ctx, tenantID); err != nil {
		return nil, nil, err
	}
	limit = clampLimit(limit)
	c := NotificationCursor{CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}
	if before != nil {
		c = *before
		if !isUUID(c.ID) {
			return nil, nil, fmt.Errorf("store: notifications: %w", invalidf("cursor id %q is not a UUID", c.ID))
		}
	}
	rows, err := s.q.ListNotifications(ctx, dbsqlc.ListNotificationsParams{TenantID: tenantID,
		BeforeCreatedAt: c.CreatedAt, BeforeID: c.ID, MaxRows: int32(limit + 1)})
	if err != nil {
		return nil, nil, translate(err, "list notifications")
	}
	out := mapRows(rows, func(r dbsqlc.ListNotificationsRow) Notification {
		return Notification{ID: r.ID, Kind: r.Kind, RunID: r.RunID, Recipients: r.Recipients, Subject: r.Subject,
			Text: r.Body, CreatedAt: r.CreatedAt, DeliveredAt: r.DeliveredAt, Status: r.Status, Attempts: int(r.Attempts),
			LastError: r.LastError, FailedAt: r.FailedAt, NextAttemptAt: r.NextAttemptAt}
	})
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &NotificationCursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// unmarshalFields reads a plan item's before or after; NULL stays nil.
func unmarshalFields(raw []byte, f *map[string]any) error {
	if raw == nil {
		return nil
	}
	return json.Unmarshal(raw, f)
}
