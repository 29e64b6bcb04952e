package store

import (
	"context"
	"fmt"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Read strategies as stored (sync_runs.read_strategy), plan's names.
const (
	ReadFull       = plan.ReadFull
	ReadTransitive = plan.ReadTransitive
)

// ReadStrategy weighs, for the tenant's next full run, reading the whole
// directory against reading only its scope groups' nested members
// (plan.ReadStrategy), by the tenant's settings now and its size as the
// runs applied so far left the mirror. CreateRun records its choice on
// each full run (Run.ReadStrategy).
func (s *Store) ReadStrategy(ctx context.Context, tenantID string) (plan.ReadChoice, error) {
	t, err := s.GetTenant(ctx, tenantID)
	if err != nil {
		return plan.ReadChoice{}, fmt.Errorf("store: read strategy of %s: %w", tenantID, err)
	}
	c, err := readStrategy(ctx, s.q, t.ID, t.Settings, s.clock(), true)
	return c, translate(err, "read strategy of "+t.ID)
}

// readStrategy is plan.ReadStrategy with its facts read through q. Unless
// sizes, a tenant the transitive strategy cannot serve is answered from
// its settings alone, without reading the mirror.
func readStrategy(ctx context.Context, q *dbsqlc.Queries, tenantID string, settings plan.Settings, now time.Time,
	sizes bool,
) (plan.ReadChoice, error) {
	facts := plan.ReadFactsOf(settings)
	if why := plan.TransitiveRefused(settings); why != "" && !sizes {
		return plan.ReadChoice{Strategy: plan.ReadFull, Why: why}, nil
	}
	row, err := q.ReadStrategySizes(ctx, dbsqlc.ReadStrategySizesParams{TenantID: tenantID, PageSize: plan.GraphPageSize})
	if err != nil {
		return plan.ReadChoice{}, err
	}
	facts.Users, facts.Groups, facts.MemberPages = int(row.Users), int(row.Groups), int(row.MemberPages)
	if !row.LastWholeReadAt.Equal(time.Unix(0, 0)) {
		facts.LastWholeReadAt = row.LastWholeReadAt
	}
	if len(settings.Scope.Groups) > 0 {
		rows, err := q.ReadStrategyScopeUsers(ctx, dbsqlc.ReadStrategyScopeUsersParams{TenantID: tenantID,
			Groups: settings.Scope.Groups})
		if err != nil {
			return plan.ReadChoice{}, err
		}
		n := make(map[string]int, len(rows))
		for _, r := range rows {
			n[r.GroupID] = int(r.Users)
		}
		for i, g := range settings.Scope.Groups {
			facts.ScopeUsers[i] = n[g]
		}
	}
	return plan.ReadStrategy(facts, now), nil
}

// runReadsScope reports whether the run's attempt (pr) read the scope
// groups' transitive members instead of the whole directory. Such a
// scoped listing says nothing about users outside the scope: no user is
// tombstoned for being missing from it, and its scope comes from its
// transitive pages (planScope). The pages decide, not the run's
// read_strategy: a fetcher that found the settings changed reads the
// whole directory, and its run is then judged as any full run.
func runReadsScope(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange) (bool, error) {
	scoped, err := q.RunReadsScope(ctx, dbsqlc.RunReadsScopeParams{TenantID: ref.TenantID, RunID: ref.RunID,
		Lo: pr.lo, Hi: pr.hi})
	if err != nil {
		return false, fmt.Errorf("read strategy of the run: %w", err)
	}
	return scoped, nil
}

// recordReadStrategy is runReadsScope at finalization: it also records
// on the run the strategy its pages show, so that a run created to read
// transitively that read the whole directory counts as a whole read.
func recordReadStrategy(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange) (bool, error) {
	scoped, err := runReadsScope(ctx, q, ref, pr)
	if err != nil {
		return false, err
	}
	if err := q.RecordRunReadStrategy(ctx, dbsqlc.RecordRunReadStrategyParams{TenantID: ref.TenantID, RunID: ref.RunID,
		Scoped: scoped}); err != nil {
		return false, fmt.Errorf("record the run's read strategy: %w", err)
	}
	return scoped, nil
}

// planScope fills plan_work_scope with the users in the scope groups:
// from the transitive lists a scoped listing read, else by walking the
// mirror's direct edges down from the groups.
func planScope(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange, groups []string) error {
	scoped, err := runReadsScope(ctx, q, ref, pr)
	if err != nil {
		return err
	}
	if scoped {
		return q.PlanScopeUsersRead(ctx, dbsqlc.PlanScopeUsersReadParams{TenantID: ref.TenantID, RunID: ref.RunID,
			Lo: pr.lo, Hi: pr.hi, Groups: groups})
	}
	return withNestLoops(ctx, q, func() error {
		return q.PlanScopeUsers(ctx, dbsqlc.PlanScopeUsersParams{TenantID: ref.TenantID, RunID: ref.RunID, Groups: groups})
	})
}
