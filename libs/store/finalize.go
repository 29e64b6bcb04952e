package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
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
	if ready, err := s.runComplete(ctx, s.q, ref); err != nil || !ready {
		return false, translate(err, "finalize run "+runID)
	}
	log := ref.logger(s.log)
	// Statistics only make plans faster: a failure to refresh them is
	// worth a warning, not the run.
	if analyzed, err := s.refreshStaleStats(ctx, tenantID, runID); err != nil {
		log.Warn().Err(err).Msg("store: could not refresh the planner's statistics before finalizing")
	} else if len(analyzed) > 0 {
		log.Debug().Strs("tables", analyzed).Msg("store: analyzed tables before finalizing")
	}
	var res planResult
	done := false
	err := s.inTx(ctx, "finalize run "+runID, func(q *dbsqlc.Queries) error {
		done = false
		if err := lockTenant(ctx, q, ref.TenantID, true); err != nil {
			return err
		}
		if err := q.LockRunForUpdate(ctx, dbsqlc.LockRunForUpdateParams{TenantID: ref.TenantID, RunID: ref.RunID}); err != nil {
			return err
		}
		st, err := readRunState(ctx, q, ref.TenantID, ref.RunID)
		if err != nil {
			return err
		}
		ref.RunSeq = st.seq
		if ready, err := s.runComplete(ctx, q, ref); err != nil || !ready {
			return err
		}
		if st.supersededBy != nil {
			msg := fmt.Sprintf("superseded by run %d, which finished first", *st.supersededBy)
			return failRun(ctx, q, ref.TenantID, ref.RunID, msg, GraphStats{}, at, false)
		}
		res, err = finalize(ctx, q, ref, pageRange{lo: *st.pagesFirst, hi: *st.pagesFirst + *st.pagesTotal}, s.fullMemberships, at)
		done = err == nil
		return err
	})
	if err != nil {
		return false, err
	}
	if done {
		log.Debug().Interface("counts", res.counts).Msg("store: run finalized")
		s.tidyAfterPlan(ctx, log, res, !res.verdict.Hold)
	}
	return done, nil
}

// runComplete reports whether the run waits to be finalized and has all
// the pages of the attempt its RunFetched names.
func (s *Store) runComplete(ctx context.Context, q *dbsqlc.Queries, ref PageRef) (bool, error) {
	p, err := q.RunProgress(ctx, dbsqlc.RunProgressParams{TenantID: ref.TenantID, RunID: ref.RunID})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("run %s of tenant %s: %w", ref.RunID, ref.TenantID, ErrNotFound)
	}
	if err != nil {
		return false, err
	}
	return p.Status == StatusApplying && p.PagesTotal != nil && p.PagesApplied == int64(*p.PagesTotal), nil
}

// pageRange is the page numbers [lo, hi) of the attempt a run is judged on.
type pageRange struct{ lo, hi int32 }

// finalize does the work of TryFinalize inside its transaction. Only the
// pages in pr say what the run saw.
// full makes the plan recompute every membership and grant (see
// WithFullMemberships).
func finalize(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange, full bool, at time.Time) (planResult, error) {
	t, r, seq := ref.TenantID, ref.RunID, ref.RunSeq

	// Finalization compares whole sets of a tenant's rows: tombstones,
	// the plan's passes, applying the plan. Right after a tenant's first
	// pages, or within this transaction (the plan's working tables, the
	// app rows it just inserted), the planner's statistics expect a
	// handful of rows and it picks nested loops, which turn quadratic
	// (10k users: seconds instead of milliseconds; 100k: hours); hash
	// joins are right at every size there. Only the walks through nested
	// groups want nested loops (withNestLoops).
	if err := setNestLoop(ctx, q, false); err != nil {
		return planResult{}, err
	}
	// Forbidden nested loops still appear in plans, at a cost of 1e10
	// each, which puts every such statement over the JIT thresholds: a
	// statement that touches no row then spends up to a second compiling
	// its expressions (a delta run's DropStaleEdges: 1.1 s of 1.1 s). No
	// statement here runs long enough on few rows to gain from JIT.
	if err := q.SetJITOff(ctx); err != nil {
		return planResult{}, fmt.Errorf("plan settings: %w", err)
	}
	// A run that read no users (or no groups) at all says nothing about
	// which of them are gone; only a run that read them may tombstone. A
	// delta run's pages (users_delta, groups_delta) are not listings and
	// do not count here, nor for DropStaleEdges, which reads complete
	// members lists only: a delta run removes what its pages say removed,
	// nothing else.
	kinds, err := q.RunPageKinds(ctx, dbsqlc.RunPageKindsParams{TenantID: t, RunID: r, Lo: pr.lo, Hi: pr.hi})
	if err != nil {
		return planResult{}, fmt.Errorf("count pages: %w", err)
	}
	if kinds.UsersPages > 0 && kinds.GroupsPages > 0 {
		if err := q.RecordRunListed(ctx, dbsqlc.RecordRunListedParams{TenantID: t, RunID: r}); err != nil {
			return planResult{}, fmt.Errorf("record the run as full: %w", err)
		}
	}
	// A scoped listing (the scope groups' transitive members) says
	// nothing about the users outside the scope: none is gone for being
	// missing from it.
	scoped, err := recordReadStrategy(ctx, q, ref, pr)
	if err != nil {
		return planResult{}, err
	}
	var tombUsers, tombGroups []string
	if kinds.UsersPages > 0 && !scoped {
		if tombUsers, err = q.TombstoneUnseenUsers(ctx, dbsqlc.TombstoneUnseenUsersParams{TenantID: t, RunID: r, RunSeq: seq,
			Lo: pr.lo, Hi: pr.hi}); err != nil {
			return planResult{}, fmt.Errorf("tombstone users: %w", err)
		}
	}
	if kinds.GroupsPages > 0 {
		if tombGroups, err = q.TombstoneUnseenGroups(ctx, dbsqlc.TombstoneUnseenGroupsParams{TenantID: t, RunID: r, RunSeq: seq,
			Lo: pr.lo, Hi: pr.hi}); err != nil {
			return planResult{}, fmt.Errorf("tombstone groups: %w", err)
		}
	}
	// A run that listed member lists checks most edges against them
	// (hash joins); any other reads the edges of the few groups gone,
	// each through the index. A run that listed nothing (a delta round)
	// names the gone groups itself.
	scanAll := kinds.ListingPages > 0
	var gone []string
	var dropped []dbsqlc.DropStaleEdgesRow
	err = withNestLoopsUnless(ctx, q, kinds.MembersPages > 0, func() error {
		if !scanAll {
			since, err := q.MembershipsRunSeq(ctx, t)
			if err != nil {
				return err
			}
			if gone, err = q.DeltaGoneGroups(ctx, dbsqlc.DeltaGoneGroupsParams{TenantID: t, RunID: r, Lo: pr.lo,
				Hi: pr.hi, Since: since}); err != nil {
				return err
			}
		}
		var err error
		dropped, err = q.DropStaleEdges(ctx, dbsqlc.DropStaleEdgesParams{TenantID: t, RunID: r, RunSeq: seq,
			Lo: pr.lo, Hi: pr.hi, ScanAll: scanAll, GoneGroups: gone})
		return err
	})
	if err != nil {
		return planResult{}, fmt.Errorf("drop stale edges: %w", err)
	}
	drift, driftChecked, err := runDrift(ctx, q, ref, tombUsers, tombGroups, dropped)
	if err != nil {
		return planResult{}, err
	}
	// Each of the tenant's devices is looked up among the edges' members
	// through their index: without nested loops, the lookup read all of
	// a 100k-user tenant's 208k edges (100 ms of a delta round) for 58
	// devices.
	if err := withNestLoops(ctx, q, func() error { return q.DropUnlistedDevices(ctx, t) }); err != nil {
		return planResult{}, fmt.Errorf("drop unlisted devices: %w", err)
	}
	// Pages of this run and older ones change nothing from now on: the
	// edge removals their delta pages kept have done their work.
	if err := q.DropMemberRemovals(ctx, dbsqlc.DropMemberRemovalsParams{TenantID: t, RunSeq: seq}); err != nil {
		return planResult{}, fmt.Errorf("drop member removals: %w", err)
	}

	res, err := buildPlan(ctx, q, ref, pr, full)
	if err != nil {
		return planResult{}, err
	}
	pages, err := q.RunPagesTotal(ctx, dbsqlc.RunPagesTotalParams{TenantID: t, RunID: r})
	if err != nil {
		return planResult{}, fmt.Errorf("read pages: %w", err)
	}
	counts := res.counts
	counts["pages"] = pages
	if counts["groupsUnreadable"], err = q.CountUnreadableGroups(ctx, dbsqlc.CountUnreadableGroupsParams{TenantID: t,
		RunID: r, Lo: pr.lo, Hi: pr.hi}); err != nil {
		return planResult{}, fmt.Errorf("count unreadable groups: %w", err)
	}
	if driftChecked {
		maps.Copy(counts, drift.Counts())
	}
	summary, err := json.Marshal(summaryJSON(res.summary))
	if err != nil {
		return planResult{}, err
	}
	countsJSON, err := json.Marshal(counts)
	if err != nil {
		return planResult{}, err
	}
	if res.verdict.Hold {
		reason := string(res.verdict.Reason)
		if err := q.HoldRun(ctx, dbsqlc.HoldRunParams{TenantID: t, RunID: r, HeldReason: reason,
			HeldMessage: res.verdict.Message, PlanSummary: summary, PlanCounts: countsJSON,
			PlanAppVersion: res.tenant.appVersion, At: at}); err != nil {
			return planResult{}, fmt.Errorf("hold run: %w", err)
		}
		if err := notify(ctx, q, t, r, plan.RunHeld(res.tenant.name, seq, res.verdict), at); err != nil {
			return planResult{}, err
		}
	} else {
		if err := q.RecordPlan(ctx, dbsqlc.RecordPlanParams{TenantID: t, RunID: r, PlanSummary: summary,
			PlanCounts: countsJSON, PlanAppVersion: res.tenant.appVersion, At: at}); err != nil {
			return planResult{}, fmt.Errorf("record plan: %w", err)
		}
		if err := applyPlan(ctx, q, ref, pr, res, at); err != nil {
			return planResult{}, err
		}
		if err := q.CompleteRun(ctx, dbsqlc.CompleteRunParams{TenantID: t, RunID: r, Counts: countsJSON, At: at}); err != nil {
			return planResult{}, fmt.Errorf("complete run: %w", err)
		}
	}
	if err := q.SupersedeOlderRuns(ctx, dbsqlc.SupersedeOlderRunsParams{TenantID: t, Seq: seq, At: at,
		AttemptPageSpan: AttemptPageSpan}); err != nil {
		return planResult{}, fmt.Errorf("supersede older runs: %w", err)
	}
	if err := q.DeleteFinishedRunPages(ctx, dbsqlc.DeleteFinishedRunPagesParams{TenantID: t, Seq: seq}); err != nil {
		return planResult{}, fmt.Errorf("delete pages: %w", err)
	}
	if err := q.DeleteFinishedRunDrift(ctx, t); err != nil {
		return planResult{}, fmt.Errorf("delete drift notes: %w", err)
	}
	return res, nil
}

// setNestLoop forbids nested-loop joins, or gives them back as the server
// is configured, until the transaction ends or the next call.
func setNestLoop(ctx context.Context, q *dbsqlc.Queries, on bool) error {
	set := q.SetNestLoopOff
	if on {
		set = q.SetNestLoopDefault
	}
	if err := set(ctx); err != nil {
		return fmt.Errorf("plan settings: %w", err)
	}
	return nil
}
