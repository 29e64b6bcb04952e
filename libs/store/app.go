package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
)

// License states of an app user (see libs/plan).
const (
	LicenseAssigned = plan.LicenseAssigned // holds one of the tenant's seats
	LicenseNone     = plan.LicenseNone     // enabled, waiting for a free seat
	LicenseDisabled = plan.LicenseDisabled // cannot hold one: account disabled, or license disabled by an admin
)

// Group kinds of an app group.
const (
	GroupMicrosoft365        = "microsoft365"
	GroupSecurity            = "security"
	GroupMailEnabledSecurity = "mailEnabledSecurity"
	GroupDistribution        = "distribution"
)

// AppUser is a user of the application, synced from an Entra user.
type AppUser struct {
	EntraID     string
	Email       string // mail, or the user principal name when Entra has no mail
	DisplayName string
	Enabled     bool
	License     string // LicenseAssigned, LicenseNone or LicenseDisabled
	// LicenseDisabledAt is when an admin disabled the license; no sync
	// enables it again.
	LicenseDisabledAt *time.Time
	// Edited says an admin edited the display name or email through the
	// API.
	Edited bool
	// Roles are the user's roles, sorted.
	Roles []string
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
		scanAppUser)
}

func scanAppUser(row pgx.CollectableRow) (AppUser, error) {
	var u AppUser
	err := row.Scan(&u.EntraID, &u.Email, &u.DisplayName, &u.Enabled, &u.License, &u.LicenseDisabledAt, &u.Edited, &u.Roles)
	return u, err
}

// GetAppUser returns one app user of a tenant, or ErrNotFound.
func (s *Store) GetAppUser(ctx context.Context, tenantID, entraID string) (AppUser, error) {
	if !isUUID(tenantID) {
		return AppUser{}, fmt.Errorf("store: get user of tenant %q: %w", tenantID, ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, qGetAppUser, tenantID, entraID)
	if err != nil {
		return AppUser{}, translate(err, "get user "+entraID)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanAppUser)
	if err != nil {
		return AppUser{}, translate(err, "get user "+entraID)
	}
	return u, nil
}

// ErrNoSeat means an admin asked to give a license back while every seat
// is taken, or to an account that cannot hold one. It is also an
// ErrConflict.
var ErrNoSeat = fmt.Errorf("%w: no seat can be given", ErrConflict)

// UserPatch is an admin's edit of an app user; nil fields stay as they
// are.
type UserPatch struct {
	// DisplayName and Email are marked edited: with localEdits "keep"
	// they survive later syncs.
	DisplayName *string
	Email       *string
	// License is LicenseDisabled (the seat is freed, and no sync gives it
	// back) or LicenseAssigned (a seat now, if one is free: ErrNoSeat
	// otherwise).
	License *string
	// Roles replaces the user's roles; each must be one of
	// plan.BuiltinRoles.
	Roles *[]string
}

// UpdateAppUser applies an admin's edit to an app user in one transaction,
// under the tenant's lock, so that it never interleaves with a plan being
// applied. Any change bumps the app side's version: plans held before it
// can no longer be approved.
func (s *Store) UpdateAppUser(ctx context.Context, tenantID, entraID string, p UserPatch) (AppUser, error) {
	if !isUUID(tenantID) {
		return AppUser{}, fmt.Errorf("store: update user of tenant %q: %w", tenantID, ErrNotFound)
	}
	if err := p.validate(); err != nil {
		return AppUser{}, fmt.Errorf("store: update user %s: %w", entraID, err)
	}
	err := s.inTx(ctx, "update user "+entraID, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, tenantID, true); err != nil {
			return err
		}
		var cur struct {
			name, email, license string
			enabled              bool
			seats                int
			used                 int
			lastSeq              int64
		}
		err := tx.QueryRow(ctx, qAppUserForEdit, tenantID, entraID).Scan(&cur.name, &cur.email, &cur.enabled, &cur.license,
			&cur.seats, &cur.used, &cur.lastSeq)
		if err != nil {
			return err
		}
		now := s.clock()
		changed := false
		exec := func(q string, args ...any) error {
			tag, err := tx.Exec(ctx, q, args...)
			changed = changed || tag.RowsAffected() > 0
			return err
		}
		if p.DisplayName != nil && *p.DisplayName != cur.name {
			if err := exec(qEditUserName, tenantID, entraID, *p.DisplayName, now); err != nil {
				return err
			}
		}
		if p.Email != nil && *p.Email != cur.email {
			if err := exec(qEditUserEmail, tenantID, entraID, *p.Email, now); err != nil {
				return err
			}
		}
		if p.License != nil {
			switch {
			case *p.License == LicenseDisabled:
				if err := exec(qDisableUserLicense, tenantID, entraID, now); err != nil {
					return err
				}
			case cur.license != LicenseAssigned:
				if err := plan.CanAssign(cur.enabled, cur.used, cur.seats); err != nil {
					return fmt.Errorf("%w: %v", ErrNoSeat, err)
				}
				if err := exec(qAssignUserLicense, tenantID, entraID, cur.lastSeq, now); err != nil {
					return err
				}
			}
		}
		if p.Roles != nil {
			if err := exec(qDropUserRoles, tenantID, entraID, *p.Roles); err != nil {
				return err
			}
			if err := exec(qAddUserRoles, tenantID, entraID, *p.Roles, now); err != nil {
				return err
			}
		}
		if !changed {
			return nil
		}
		_, err = tx.Exec(ctx, qAppChanged, tenantID, now, fmt.Sprintf("user %s (%s) was edited through the API", cur.name, entraID))
		return err
	})
	if err != nil {
		return AppUser{}, err
	}
	return s.GetAppUser(ctx, tenantID, entraID)
}

func (p UserPatch) validate() error {
	if p.DisplayName != nil && strings.TrimSpace(*p.DisplayName) == "" {
		return invalidf("displayName is empty")
	}
	if p.Email != nil && strings.TrimSpace(*p.Email) == "" {
		return invalidf("email is empty")
	}
	if p.License != nil && *p.License != LicenseDisabled && *p.License != LicenseAssigned {
		return invalidf("license %q is neither %q nor %q", *p.License, LicenseDisabled, LicenseAssigned)
	}
	if p.Roles != nil {
		for _, r := range *p.Roles {
			if !slices.Contains(plan.BuiltinRoles, r) {
				return invalidf("role %q is not one of %s", r, strings.Join(plan.BuiltinRoles, ", "))
			}
		}
	}
	return nil
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
	qGetAppUser          = query("GetAppUser")
	qAppUserForEdit      = query("AppUserForEdit")
	qEditUserName        = query("EditUserName")
	qEditUserEmail       = query("EditUserEmail")
	qDisableUserLicense  = query("DisableUserLicense")
	qAssignUserLicense   = query("AssignUserLicense")
	qDropUserRoles       = query("DropUserRoles")
	qAddUserRoles        = query("AddUserRoles")
	qListAppGroups       = query("ListAppGroups")
	qListAppGroupMembers = query("ListAppGroupMembers")
)
