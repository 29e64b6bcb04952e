package store

import (
	"context"
	"fmt"
)

// MirrorUserCount is how many users the tenant's directory mirror holds
// (deleted ones left out), as of the runs applied so far; 0 before the
// first. The fetcher sizes the tenant's Graph budget by it: Graph gives
// an app more resource units in a larger tenant.
func (s *Store) MirrorUserCount(ctx context.Context, tenantID string) (int, error) {
	id, ok := canonicalID(tenantID)
	if !ok {
		return 0, fmt.Errorf("store: mirror user count of %q: %w", tenantID, ErrNotFound)
	}
	n, err := s.q.MirrorUserCount(ctx, id)
	if err != nil {
		return 0, translate(err, "mirror user count of "+id)
	}
	return int(n), nil
}
