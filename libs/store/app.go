package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// License states of an app user.
const (
	LicenseAssigned = "assigned" // holds one of the tenant's seats
	LicenseNone     = "none"     // enabled, waiting for a free seat
	LicenseDisabled = "disabled" // disabled in Entra: holds no seat
)

// Group kinds of an app group.
const (
	GroupMicrosoft365        = "microsoft365"
	GroupSecurity            = "security"
	GroupMailEnabledSecurity = "mailEnabledSecurity"
	GroupDistribution        = "distribution"
)

// AppUser is a user of the application, derived from an Entra Member user.
type AppUser struct {
	EntraID     string
	Email       string // mail, or the user principal name when Entra has no mail
	DisplayName string
	Enabled     bool
	License     string // LicenseAssigned, LicenseNone or LicenseDisabled
}

// AppGroup is an Entra group as the application sees it.
type AppGroup struct {
	EntraID     string
	DisplayName string
	Kind        string // GroupMicrosoft365, GroupSecurity, GroupMailEnabledSecurity, GroupDistribution
	Dynamic     bool
	// EntraMemberCount is the number of users in the group's nested
	// membership according to Graph; SyncedMemberCount counts the app
	// users among them, as computed from the mirrored edges.
	EntraMemberCount  int
	SyncedMemberCount int
}

// ListAppUsers returns up to limit app users of a tenant with an Entra id
// after `after`, in Entra id order, and the cursor of the next page ("" at
// the end). limit 0 or less means 100; it is capped at 1000.
func (s *Store) ListAppUsers(ctx context.Context, tenantID, after string, limit int) ([]AppUser, string, error) {
	return list(ctx, s, "list app users", qListAppUsers, tenantID, after, limit,
		func(u AppUser) string { return u.EntraID },
		func(row pgx.CollectableRow) (AppUser, error) {
			var u AppUser
			err := row.Scan(&u.EntraID, &u.Email, &u.DisplayName, &u.Enabled, &u.License)
			return u, err
		})
}

// ListAppGroups returns a page of a tenant's app groups, like ListAppUsers.
func (s *Store) ListAppGroups(ctx context.Context, tenantID, after string, limit int) ([]AppGroup, string, error) {
	return list(ctx, s, "list app groups", qListAppGroups, tenantID, after, limit,
		func(g AppGroup) string { return g.EntraID },
		func(row pgx.CollectableRow) (AppGroup, error) {
			var g AppGroup
			err := row.Scan(&g.EntraID, &g.DisplayName, &g.Kind, &g.Dynamic, &g.EntraMemberCount, &g.SyncedMemberCount)
			return g, err
		})
}

// ListAppGroupMembers returns a page of the Entra ids of the app users in a
// group's nested membership, like ListAppUsers.
func (s *Store) ListAppGroupMembers(ctx context.Context, tenantID, groupID, after string, limit int) ([]string, string, error) {
	if !isUUID(tenantID) {
		return nil, "", fmt.Errorf("store: list group members of tenant %q: %w", tenantID, ErrNotFound)
	}
	limit = clampLimit(limit)
	rows, err := s.pool.Query(ctx, qListAppGroupMembers, tenantID, groupID, after, limit+1)
	if err != nil {
		return nil, "", translate(err, "list group members")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, "", translate(err, "list group members")
	}
	return page(ids, limit, func(id string) string { return id })
}

func list[T any](ctx context.Context, s *Store, what, q, tenantID, after string, limit int,
	key func(T) string, scan pgx.RowToFunc[T]) ([]T, string, error) {
	if !isUUID(tenantID) {
		return nil, "", fmt.Errorf("store: %s of tenant %q: %w", what, tenantID, ErrNotFound)
	}
	limit = clampLimit(limit)
	rows, err := s.pool.Query(ctx, q, tenantID, after, limit+1)
	if err != nil {
		return nil, "", translate(err, what)
	}
	items, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, "", translate(err, what)
	}
	if len(items) == 0 && after == "" {
		// Tell "no users yet" from "no such tenant".
		if err := s.tenantExists(ctx, tenantID); err != nil {
			return nil, "", err
		}
	}
	return page(items, limit, key)
}

// page cuts the extra row a list query fetched and turns it into a cursor.
func page[T any](items []T, limit int, key func(T) string) ([]T, string, error) {
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, key(items[limit-1]), nil
}

var (
	qListAppUsers        = query("ListAppUsers")
	qListAppGroups       = query("ListAppGroups")
	qListAppGroupMembers = query("ListAppGroupMembers")
)
