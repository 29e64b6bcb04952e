package store

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Planner statistics of the tables every tenant shares.
//
// Postgres plans from statistics autovacuum refreshes in the background,
// a minute or more after a table changed. A tenant's first full sync
// writes hundreds of thousands of mirror rows, its first plan as many
// app rows, and the statements of the next finalization run within
// seconds: planned on the old statistics, the tenant is a rare value of
// tenant_id, its rows "a handful", and a walk through them turns into a
// nested loop over every edge of the tenant for every group (a 100k-user
// delta round's member counts: 12 s instead of a fraction of one).
//
// So before a run is finalized, the shared tables that changed much since
// their last analyze are analyzed, outside the finalization's transaction
// (which would otherwise hold the analyze's lock, and with it every other
// tenant's analyze, until it commits), skipping a table another session
// is analyzing right then. The run pays for that only when it made a fair
// part of the changes itself: a 100-user tenant's run beside a large
// tenant's sync does not wait for the tables the large one is filling,
// whose own finalization analyzes them.

// A plan's application writes the app's tables the same way: a tenant's
// first plan inserts a row per user and membership, and the next
// finalization, planned on statistics that do not know them, reads a
// tenant's 450k memberships to delete 300. So once a plan is applied, the
// app tables it changed much are analyzed, by the same rule, with the
// plan's items in place of the pages' objects.

// statsTables are the tables finalization reads whole tenants of.
var statsTables = []string{
	"dir_users", "dir_groups", "dir_members", "dir_devices",
	"app_users", "app_groups", "app_group_members",
}

// Thresholds of statsStale.
const (
	// staleRows changed rows make any table's statistics stale: an
	// analyze samples a bounded number of rows (a fraction of a second),
	// far less than writing that many rows cost.
	staleRows = 10_000
	// Below staleRows, a table is stale when more than a tenth of its
	// rows changed (autovacuum's own default fraction), and at least
	// staleMinRows did.
	staleMinRows = 500
)

// statsStale is the rule: a table whose rows changed since its last
// analyze by staleRows, or by more than a tenth of its live rows (and
// staleMinRows), needs analyzing before plans can trust its statistics.
// The counts are the whole table's, all tenants together.
func statsStale(modified, live int64) bool {
	if modified >= staleRows {
		return true
	}
	return modified >= staleMinRows && modified*10 > live
}

// analyzeBeforeFinalizing is the rule for one table and the run being
// finalized, whose pages mention runObjects objects, written of them in
// pages that write this table: the table is stale, and the run's objects
// are at least a tenth of the table's changes. Sessions report their
// writes to the statistics a while after they commit (when idle, at most
// once a second, and within seconds): the last pages of a run applied
// just now may not be counted in modified yet, so the objects of the
// run's pages that write the table stand for the least it changed.
func analyzeBeforeFinalizing(modified, live, runObjects, written int64) bool {
	return statsStale(max(modified, written), live) && runObjects*10 >= modified
}

// pageTables are the tables of statsTables each page kind writes a row
// of for most objects it mentions. Devices come few among members, and
// are left to what the statistics count.
var pageTables = map[string][]string{
	"users": {"dir_users"}, "users_delta": {"dir_users"},
	"groups": {"dir_groups"}, "groups_delta": {"dir_groups", "dir_members"},
	"members": {"dir_members"}, "transitive": {"dir_members"},
}

// refreshStaleStats analyzes the tables of statsTables that
// analyzeBeforeFinalizing picks for the run, and returns their names.
func (s *Store) refreshStaleStats(ctx context.Context, tenantID, runID string) ([]string, error) {
	byKind, err := s.q.RunPageObjects(ctx, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("count the run's objects: %w", err)
	}
	var objects int64
	written := map[string]int64{}
	for kind, n := range byKind {
		objects += n
		for _, table := range pageTables[kind] {
			written[table] += n
		}
	}
	return s.analyzeWhere(ctx, statsTables, func(c dbsqlc.TableChanges) bool {
		return analyzeBeforeFinalizing(c.ModifiedSinceAnalyze, c.LiveRows, objects, written[c.Table])
	})
}

// analyzeWhere analyzes those of tables whose statistics stale picks, and
// returns their names.
func (s *Store) analyzeWhere(ctx context.Context, tables []string, stale func(dbsqlc.TableChanges) bool) ([]string, error) {
	changes, err := s.q.TablesChanges(ctx, tables)
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	var picked []string
	for _, c := range changes {
		if stale(c) {
			picked = append(picked, c.Table)
		}
	}
	if err := s.q.AnalyzeSkipLocked(ctx, picked...); err != nil {
		return nil, fmt.Errorf("analyze %v: %w", picked, err)
	}
	return picked, nil
}

// appTableActions are the plan's actions that write each app table of
// statsTables.
var appTableActions = map[string][]plan.Action{
	"app_users": {plan.CreateUser, plan.UpdateUser, plan.DisableUser, plan.EnableUser, plan.RemoveUser,
		plan.AssignLicense, plan.RevokeLicense},
	"app_groups":        {plan.CreateGroup, plan.UpdateGroup, plan.RemoveGroup},
	"app_group_members": {plan.AddMembership, plan.RemoveMembership},
}

// analyzeAfterApplying is the rule for one app table and a plan just
// applied, which wrote planned of its rows: as analyzeBeforeFinalizing,
// the plan's rows standing for both the run's objects and the least the
// table changed (the plan's own writes may not be counted yet either).
func analyzeAfterApplying(modified, live, planned int64) bool {
	return analyzeBeforeFinalizing(modified, live, planned, planned)
}

// workTables are the plan's working tables: every plan fills them and
// deletes its rows when it is done.
var workTables = []string{
	"plan_work_scope", "plan_work_users", "plan_work_groups", "plan_work_members", "plan_work_affected",
}

// tidyAfterPlan runs once a plan's transaction committed (applied says
// whether the plan was applied, not held). It analyzes the app tables
// the plan changed much (see analyzeAfterApplying), and after a plan
// that recomputed everything, vacuums the working tables: such a plan
// left a dead row there for every user, group and membership of the
// tenant, which the next plans would otherwise read past until
// autovacuum comes by. Neither changes what a plan decides: a failure is
// a warning.
func (s *Store) tidyAfterPlan(ctx context.Context, log zerolog.Logger, res planResult, applied bool) {
	if applied {
		if analyzed, err := s.analyzeApplied(ctx, res.summary); err != nil {
			log.Warn().Err(err).Msg("store: could not refresh the planner's statistics after applying a plan")
		} else if len(analyzed) > 0 {
			log.Debug().Strs("tables", analyzed).Msg("store: analyzed tables after applying a plan")
		}
	}
	if res.tenant.fullMemberships {
		if err := s.q.VacuumSkipLocked(ctx, workTables...); err != nil {
			log.Warn().Err(err).Msg("store: could not vacuum the plan's working tables")
		}
	}
}

// analyzeApplied analyzes the app tables of statsTables that
// analyzeAfterApplying picks for a plan of summary, and returns their
// names.
func (s *Store) analyzeApplied(ctx context.Context, summary plan.Summary) ([]string, error) {
	planned := map[string]int64{}
	var tables []string
	for table, actions := range appTableActions {
		for _, a := range actions {
			planned[table] += summary[a]
		}
		if planned[table] > 0 {
			tables = append(tables, table)
		}
	}
	if len(tables) == 0 {
		return nil, nil
	}
	return s.analyzeWhere(ctx, tables, func(c dbsqlc.TableChanges) bool {
		return analyzeAfterApplying(c.ModifiedSinceAnalyze, c.LiveRows, planned[c.Table])
	})
}
