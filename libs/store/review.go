package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
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
	err := s.inTx(ctx, what, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, ref.TenantID, true); err != nil {
			return err
		}
		var st struct {
			seq, appVersion, planVersion int64
			status                       string
			planVersionP                 *int64
			counts                       []byte
			first, total                 *int32
			newer                        *int64
			changedAt                    *time.Time
			change                       string
		}
		err := tx.QueryRow(ctx, qRunPlanState, ref.TenantID, ref.RunID).Scan(&st.seq, &st.status, &st.planVersionP,
			&st.counts, &st.first, &st.total, &st.newer, &st.appVersion, &st.changedAt, &st.change)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s of tenant %s: %w", ref.RunID, ref.TenantID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if st.status != StatusAwaitingApproval {
			return fmt.Errorf("%w: run %d is %s", ErrNotHeld, st.seq, st.status)
		}
		now := s.clock()
		ref.RunSeq = st.seq
		if !approve {
			if _, err := tx.Exec(ctx, qDecideRun, ref.TenantID, ref.RunID, StatusRejected, now, nil); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, qDeleteRunPages, ref.TenantID, ref.RunID)
			return err
		}
		if st.newer != nil {
			return fmt.Errorf("%w: run %d was planned after this one and replaces its plan; review run %d instead",
				ErrStalePlan, *st.newer, *st.newer)
		}
		if st.planVersionP != nil {
			st.planVersion = *st.planVersionP
		}
		if st.appVersion != st.planVersion {
			when := ""
			if st.changedAt != nil {
				when = " on " + st.changedAt.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("%w: %s%s, after this plan was made; sync again for a fresh plan",
				ErrStalePlan, st.change, when)
		}
		if st.first == nil || st.total == nil {
			return fmt.Errorf("run %d has no fetched pages: %w", st.seq, ErrInvalid)
		}
		pr := pageRange{lo: *st.first, hi: *st.first + *st.total}
		t, err := loadPlanTenant(ctx, tx, ref, pr)
		if err != nil {
			return err
		}
		res := planResult{tenant: t, counts: map[string]int64{}}
		if err := json.Unmarshal(st.counts, &res.counts); err != nil {
			return fmt.Errorf("plan counts of run %d: %w", st.seq, err)
		}
		if res.summary, err = planSummary(ctx, tx, ref); err != nil {
			return err
		}
		if err := applyPlan(ctx, tx, ref, pr, res, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDecideRun, ref.TenantID, ref.RunID, StatusSucceeded, now, res.counts); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, qDeleteRunPages, ref.TenantID, ref.RunID)
		return err
	})
	if err != nil {
		return Run{}, err
	}
	return s.GetRun(ctx, ref.TenantID, ref.RunID)
}

// planSummary counts a stored plan's items per action.
func planSummary(ctx context.Context, tx pgx.Tx, ref PageRef) (plan.Summary, error) {
	rows, err := tx.Query(ctx, qPlanItemCounts, ref.TenantID, ref.RunID)
	if err != nil {
		return nil, err
	}
	sum := plan.Summary{}
	for rows.Next() {
		var a string
		var n int64
		if err := rows.Scan(&a, &n); err != nil {
			rows.Close()
			return nil, err
		}
		sum[plan.Action(a)] = n
	}
	return sum, rows.Err()
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
	if _, err := s.GetRun(ctx, tenantID, runID); err != nil {
		return nil, -1, err
	}
	limit = clampLimit(limit)
	rows, err := s.pool.Query(ctx, qListPlanItems, tenantID, runID, after, limit+1)
	if err != nil {
		return nil, -1, translate(err, "list plan items")
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PlanItem, error) {
		var it PlanItem
		err := r.Scan(&it.Seq, &it.Action, &it.EntraID, &it.GroupID, &it.Role, &it.DisplayName, &it.Before, &it.After, &it.Reason)
		return it, err
	})
	if err != nil {
		return nil, -1, translate(err, "list plan items")
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
	rows, err := s.pool.Query(ctx, qListNotifications, tenantID, c.CreatedAt, c.ID, limit+1)
	if err != nil {
		return nil, nil, translate(err, "list notifications")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) {
		var n Notification
		err := r.Scan(&n.ID, &n.Kind, &n.RunID, &n.Recipients, &n.Subject, &n.Text, &n.CreatedAt, &n.DeliveredAt)
		return n, err
	})
	if err != nil {
		return nil, nil, translate(err, "list notifications")
	}
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &NotificationCursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

var qPlanItemCounts = query("PlanItemCounts")
