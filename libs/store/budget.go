package store

import (
	"context"
	"fmt"

	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// MirrorUserCount is how many users the tenant's directory mirror holds
// (deleted ones left out), as of the runs applied so far; 0 before the
// first. The fetcher sizes the tenant's Graph budget by it: Graph gives
// an app more resource units in a larger tenant. When upTo > 0 the count
// stops there: the tiers stop at a few hundred users, and counting a
// tenant's 100k users read 100k rows before each run.
func (s *Store) MirrorUserCount(ctx context.Context, tenantID string, upTo int) (int, error) {
	id, ok := canonicalID(tenantID)
	if !ok {
		return 0, fmt.Errorf("store: mirror user count of %q: %w", tenantID, ErrNotFound)
	}
	var limit *int64
	if upTo > 0 {
		l := int64(upTo)
		limit = &l
	}
	n, err := s.q.MirrorUserCount(ctx, dbsqlc.MirrorUserCountParams{TenantID: id, UpTo: limit})
	if err != nil {
		return 0, translate(err, "mirror user count of "+id)
	}
	return int(n), nil
}
