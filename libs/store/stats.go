package store

import (
	"context"
	"fmt"
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
// finalized, whose pages mention runObjects objects: the table is stale,
// and the run's objects are at least a tenth of the table's changes.
func analyzeBeforeFinalizing(modified, live, runObjects int64) bool {
	return statsStale(modified, live) && runObjects*10 >= modified
}

// refreshStaleStats analyzes the tables of statsTables that
// analyzeBeforeFinalizing picks for the run, and returns their names.
func (s *Store) refreshStaleStats(ctx context.Context, tenantID, runID string) ([]string, error) {
	objects, err := s.q.RunPageObjects(ctx, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("count the run's objects: %w", err)
	}
	changes, err := s.q.TablesChanges(ctx, statsTables)
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	var stale []string
	for _, c := range changes {
		if analyzeBeforeFinalizing(c.ModifiedSinceAnalyze, c.LiveRows, objects) {
			stale = append(stale, c.Table)
		}
	}
	if err := s.q.AnalyzeSkipLocked(ctx, stale...); err != nil {
		return nil, fmt.Errorf("analyze %v: %w", stale, err)
	}
	return stale, nil
}
