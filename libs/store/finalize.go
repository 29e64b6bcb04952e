package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
)

// TryFinalize finishes a run whose pages are all applied (the pages of the
// attempt its RunFetched names; other attempts' do not count): in one
// transaction it tombstones what those pages did not contain, derives the
// application side (users, seats, groups, memberships) from the mirror,
// and records the counts and the status succeeded. It returns true when
// this call finished the run, false when the run is not complete yet, is
// already over, or another call got there first.
//
// Call it after every page and after MarkRunFetched, each in its own
// transaction after the apply committed: whichever call comes after the
// last of them sees the run complete, so the moment is never lost even
// when pages are applied side by side.
func (s *Store) TryFinalize(ctx context.Context, tenantID, runID string, at time.Time) (bool, error) {
	ref := PageRef{TenantID: tenantID, RunID: runID, RunSeq: 1, Page: -1}
	if err := ref.validate(false); err != nil {
		return false, fmt.Errorf("store: finalize: %w", err)
	}
	// A cheap look without locks first: most pages are not the last one.
	if ready, err := s.runComplete(ctx, s.pool, ref); err != nil || !ready {
		return false, translate(err, "finalize run "+runID)
	}
	log := ref.logger(s.log)
	var counts map[string]int64
	done := false
	err := s.inTx(ctx, "finalize run "+runID, func(tx pgx.Tx) error {
		done = false
		if err := lockTenant(ctx, tx, ref.TenantID, true); err != nil {
			return err
		}
		var st runState
		if err := tx.QueryRow(ctx, qRunState+" FOR UPDATE OF r", ref.TenantID, ref.RunID).Scan(
			&st.seq, &st.status, &st.pagesFirst, &st.pagesTotal, &st.supersededBy); err != nil {
			return err
		}
		ref.RunSeq = st.seq
		if ready, err := s.runComplete(ctx, tx, ref); err != nil || !ready {
			return err
		}
		if st.supersededBy != nil {
			msg := fmt.Sprintf("superseded by run %d, which finished first", *st.supersededBy)
			return failRun(ctx, tx, ref.TenantID, ref.RunID, msg, GraphStats{}, at, false)
		}
		var err error
		counts, err = finalize(ctx, tx, ref, pageRange{lo: *st.pagesFirst, hi: *st.pagesFirst + *st.pagesTotal}, at)
		done = err == nil
		return err
	})
	if err != nil {
		return false, err
	}
	if done {
		log.Debug().Interface("counts", counts).Msg("store: run finalized")
	}
	return done, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// runComplete reports whether the run waits to be finalized and has all
// the pages of the attempt its RunFetched names.
func (s *Store) runComplete(ctx context.Context, q querier, ref PageRef) (bool, error) {
	var status string
	var total *int32
	var applied int64
	err := q.QueryRow(ctx, qRunProgress, ref.TenantID, ref.RunID).Scan(&status, &total, &applied)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("run %s of tenant %s: %w", ref.RunID, ref.TenantID, ErrNotFound)
	}
	if err != nil {
		return false, err
	}
	return status == StatusApplying && total != nil && applied == int64(*total), nil
}

// pageRange is the page numbers [lo, hi) of the attempt a run is judged on.
type pageRange struct{ lo, hi int32 }

// finalize does the work of TryFinalize inside its transaction. Only the
// pages in pr say what the run saw.
func finalize(ctx context.Context, tx pgx.Tx, ref PageRef, pr pageRange, at time.Time) (map[string]int64, error) {
	t, r, seq := ref.TenantID, ref.RunID, ref.RunSeq

	// The tombstones compare whole sets of a tenant's rows. Right after a
	// tenant's first pages, or for a tenant the table statistics have not
	// met yet, the planner expects a handful of rows and picks nested
	// loops, which turn quadratic (10k users: seconds instead of
	// milliseconds); hash joins are right at every size there. The plan
	// step reads in chunks through indexes, where nested loops are what
	// it wants, so the setting is undone before it.
	if err := setNestLoop(ctx, tx, false); err != nil {
		return nil, err
	}
	// A run that read no users (or no groups) at all says nothing about
	// which of them are gone; only a run that read them may tombstone.
	var usersPages, groupsPages int64
	if err := tx.QueryRow(ctx, qRunPageKinds, t, r, pr.lo, pr.hi).Scan(&usersPages, &groupsPages); err != nil {
		return nil, fmt.Errorf("count pages: %w", err)
	}
	if usersPages > 0 {
		if _, err := tx.Exec(ctx, qTombstoneUnseenUsers, t, r, seq, pr.lo, pr.hi); err != nil {
			return nil, fmt.Errorf("tombstone users: %w", err)
		}
	}
	if groupsPages > 0 {
		if _, err := tx.Exec(ctx, qTombstoneUnseenGroups, t, r, seq, pr.lo, pr.hi); err != nil {
			return nil, fmt.Errorf("tombstone groups: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, qDropStaleEdges, t, r, seq, pr.lo, pr.hi); err != nil {
		return nil, fmt.Errorf("drop stale edges: %w", err)
	}

	if err := setNestLoop(ctx, tx, true); err != nil {
		return nil, err
	}
	res, err := buildPlan(ctx, tx, ref, pr)
	if err != nil {
		return nil, err
	}
	var pages int64
	if err := tx.QueryRow(ctx, qRunPagesTotal, t, r).Scan(&pages); err != nil {
		return nil, fmt.Errorf("read pages: %w", err)
	}
	counts := res.counts
	counts["pages"] = pages
	summary := summaryJSON(res.summary)
	if res.verdict.Hold {
		if _, err := tx.Exec(ctx, qHoldRun, t, r, string(res.verdict.Reason), res.verdict.Message, summary, counts,
			res.tenant.appVersion, at); err != nil {
			return nil, fmt.Errorf("hold run: %w", err)
		}
		if err := notify(ctx, tx, t, r, plan.RunHeld(res.tenant.name, seq, res.verdict), at); err != nil {
			return nil, err
		}
	} else {
		if _, err := tx.Exec(ctx, qRecordPlan, t, r, summary, counts, res.tenant.appVersion, at); err != nil {
			return nil, fmt.Errorf("record plan: %w", err)
		}
		if err := applyPlan(ctx, tx, ref, pr, res, at); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, qCompleteRun, t, r, counts, at); err != nil {
			return nil, fmt.Errorf("complete run: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, qSupersedeOlderRuns, t, seq, at, attemptPageSpan); err != nil {
		return nil, fmt.Errorf("supersede older runs: %w", err)
	}
	if _, err := tx.Exec(ctx, qDeleteFinishedRunPages, t, seq); err != nil {
		return nil, fmt.Errorf("delete pages: %w", err)
	}
	return counts, nil
}

// setNestLoop forbids nested-loop joins, or gives them back as the server
// is configured, until the transaction ends or the next call.
func setNestLoop(ctx context.Context, tx pgx.Tx, on bool) error {
	v := "off"
	if on {
		v = "DEFAULT"
	}
	if _, err := tx.Exec(ctx, "SET LOCAL enable_nestloop = "+v); err != nil {
		return fmt.Errorf("plan settings: %w", err)
	}
	return nil
}

var (
	qRunProgress            = query("RunProgress")
	qRunPageKinds           = query("RunPageKinds")
	qRunPagesTotal          = query("RunPagesTotal")
	qTombstoneUnseenUsers   = query("TombstoneUnseenUsers")
	qTombstoneUnseenGroups  = query("TombstoneUnseenGroups")
	qDropStaleEdges         = query("DropStaleEdges")
	qCompleteRun            = query("CompleteRun")
	qSupersedeOlderRuns     = query("SupersedeOlderRuns")
	qDeleteFinishedRunPages = query("DeleteFinishedRunPages")
)
