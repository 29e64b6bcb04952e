package store

import (
	"context"
	"fmt"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// ReadStrategy weighs, for the tenant's next full run, the cost of
// reading the whole directory against reading only its scope groups'
// nested members (plan.ReadStrategy), by the tenant's settings now and
// its size as the runs applied so far left the mirror.
//
// It reports; it decides nothing yet: every full run reads the whole
// directory (the transitive read needs a scoped finalization and scope
// from transitive pages, which the store does not have yet).
func (s *Store) ReadStrategy(ctx context.Context, tenantID string) (plan.ReadChoice, error) {
	settings, err := s.TenantSettings(ctx, tenantID)
	if err != nil {
		return plan.ReadChoice{}, fmt.Errorf("store: read strategy of %s: %w", tenantID, err)
	}
	id, _ := canonicalID(tenantID) // TenantSettings found it
	facts := plan.ReadFactsOf(settings)
	sizes, err := s.q.ReadStrategySizes(ctx, dbsqlc.ReadStrategySizesParams{TenantID: id, PageSize: plan.GraphPageSize})
	if err != nil {
		return plan.ReadChoice{}, translate(err, "read strategy sizes of "+id)
	}
	facts.Known = sizes.Known
	facts.Users, facts.Groups, facts.MemberPages = int(sizes.Users), int(sizes.Groups), int(sizes.MemberPages)
	if len(settings.Scope.Groups) > 0 {
		rows, err := s.q.ReadStrategyScopeUsers(ctx, dbsqlc.ReadStrategyScopeUsersParams{TenantID: id, Groups: settings.Scope.Groups})
		if err != nil {
			return plan.ReadChoice{}, translate(err, "scope users of "+id)
		}
		n := make(map[string]int, len(rows))
		for _, r := range rows {
			n[r.GroupID] = int(r.Users)
		}
		for i, g := range settings.Scope.Groups {
			facts.ScopeUsers[i] = n[g]
		}
	}
	return plan.ReadStrategy(facts), nil
}
