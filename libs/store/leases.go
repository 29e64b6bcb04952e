package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Leases keep one tenant's directory read by one fetcher at a time. Their
// expiry is judged by the database's clock, not the caller's (nor the
// store's WithClock): hosts whose clocks drift apart still agree on who
// holds a lease, and a host whose clock runs ahead cannot take a lease
// that is live. Only the ttl comes from the caller.

// AcquireLease takes the tenant's lease for holder until ttl from now. It
// returns false when another holder has an unexpired lease. A holder that
// already has the lease gets it extended.
func (s *Store) AcquireLease(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(tenantID, holder, ttl); err != nil {
		return false, fmt.Errorf("store: acquire lease: %w", err)
	}
	ok, err := s.q.AcquireLease(ctx, dbsqlc.AcquireLeaseParams{TenantID: tenantID, Holder: holder,
		TtlSeconds: ttl.Seconds()})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(err, "acquire lease of "+tenantID)
	}
	return ok, nil
}

// RenewLease extends holder's lease to ttl from now. It returns false when
// holder no longer has the lease (it expired or was taken): the holder
// must then stop working on the tenant.
func (s *Store) RenewLease(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(tenantID, holder, ttl); err != nil {
		return false, fmt.Errorf("store: renew lease: %w", err)
	}
	n, err := s.q.RenewLease(ctx, dbsqlc.RenewLeaseParams{TenantID: tenantID, Holder: holder,
		TtlSeconds: ttl.Seconds()})
	if err != nil {
		return false, translate(err, "renew lease of "+tenantID)
	}
	return n == 1, nil
}

// ReleaseLease gives up holder's lease, if it still has it.
func (s *Store) ReleaseLease(ctx context.Context, tenantID, holder string) error {
	if err := checkLease(tenantID, holder, time.Second); err != nil {
		return fmt.Errorf("store: release lease: %w", err)
	}
	err := s.q.ReleaseLease(ctx, dbsqlc.ReleaseLeaseParams{TenantID: tenantID, Holder: holder})
	return translate(err, "release lease of "+tenantID)
}

func checkLease(tenantID, holder string, ttl time.Duration) error {
	switch {
	case !isUUID(tenantID):
		return fmt.Errorf("tenant %q: %w", tenantID, ErrNotFound)
	case strings.TrimSpace(holder) == "":
		return invalidf("lease holder is empty")
	case ttl <= 0:
		return invalidf("lease ttl %v is not positive", ttl)
	}
	return nil
}
