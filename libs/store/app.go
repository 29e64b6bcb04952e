package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
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
	GroupLocal               = "local"
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
	Kind        string // GroupMicrosoft365, GroupSecurity, GroupMailEnabledSecurity, GroupDistribution, GroupLocal
	Dynamic     bool
	// Status is plan.StatusEnabled, plan.StatusDisabled or
	// plan.StatusOrphaned.
	Status string
	// EntraMemberCount is the number of users in the group's nested
	// membership according to Graph; SyncedMemberCount counts the app
	// users among them, as computed from the mirrored edges.
	EntraMemberCount  int
	SyncedMemberCount int
	// LastOK says whether the last applied run could read the group's
	// members; LastError is Graph's refusal when it could not (the
	// group's members then stay as last read). LastResultAt is when that
	// run ended; nil before the first.
	LastOK       bool
	LastError    string
	LastResultAt *time.Time
}

// ListAppUsers returns up to limit app users of a tenant with an Entra id
// after `after`, in Entra id order, and the cursor of the next page ("" at
// the end). limit 0 or less means 100; it is capped at 1000.
func (s *Store) ListAppUsers(ctx context.Context, tenantID, after string, limit int) ([]AppUser, string, error) {
	return list(ctx, s, "list app users", tenantID, after, limit,
		func(after string, rows int32) ([]AppUser, error) {
			users, err := s.q.ListAppUsers(ctx, dbsqlc.ListAppUsersParams{TenantID: tenantID, After: after, MaxRows: rows})
			return mapRows(users, func(u dbsqlc.ListAppUsersRow) AppUser { return AppUser(u) }), err
		},
		func(u AppUser) string { return u.EntraID })
}

// GetAppUser returns one app user of a tenant, or ErrNotFound.
func (s *Store) GetAppUser(ctx context.Context, tenantID, entraID string) (AppUser, error) {
	if !isUUID(tenantID) {
		return AppUser{}, fmt.Errorf("store: get user of tenant %q: %w", tenantID, ErrNotFound)
	}
	u, err := s.q.GetAppUser(ctx, dbsqlc.GetAppUserParams{TenantID: tenantID, EntraID: entraID})
	if err != nil {
		return AppUser{}, translate(err, "get user "+entraID)
	}
	return AppUser(u), nil
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
	err := s.inTx(ctx, "update user "+entraID, func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		cur, err := q.AppUserForEdit(ctx, dbsqlc.AppUserForEditParams{TenantID: tenantID, EntraID: entraID})
		if err != nil {
			return err
		}
		was, err := q.GetAppUser(ctx, dbsqlc.GetAppUserParams{TenantID: tenantID, EntraID: entraID})
		if err != nil {
			return err
		}
		now := s.clock()
		changed := false
		// exec notes whether a statement changed a row.
		exec := func(n int64, err error) error {
			changed = changed || n > 0
			return err
		}
		if p.DisplayName != nil && *p.DisplayName != cur.DisplayName {
			if err := exec(q.EditUserName(ctx, dbsqlc.EditUserNameParams{TenantID: tenantID, EntraID: entraID,
				DisplayName: *p.DisplayName, At: now})); err != nil {
				return err
			}
		}
		if p.Email != nil && *p.Email != cur.Email {
			if err := exec(q.EditUserEmail(ctx, dbsqlc.EditUserEmailParams{TenantID: tenantID, EntraID: entraID,
				Email: *p.Email, At: now})); err != nil {
				return err
			}
		}
		if p.License != nil {
			switch {
			case *p.License == LicenseDisabled:
				if err := exec(q.DisableUserLicense(ctx, dbsqlc.DisableUserLicenseParams{TenantID: tenantID,
					EntraID: entraID, At: now})); err != nil {
					return err
				}
			case cur.License != LicenseAssigned:
				if err := plan.CanAssign(cur.Enabled, int(cur.SeatsUsed), int(cur.Seats)); err != nil {
					return fmt.Errorf("%w: %v", ErrNoSeat, err)
				}
				if err := exec(q.AssignUserLicense(ctx, dbsqlc.AssignUserLicenseParams{TenantID: tenantID,
					EntraID: entraID, RunSeq: cur.LastRunSeq, At: now})); err != nil {
					return err
				}
			}
		}
		if p.Roles != nil {
			if err := exec(q.DropUserRoles(ctx, dbsqlc.DropUserRolesParams{TenantID: tenantID, UserID: entraID,
				Roles: *p.Roles})); err != nil {
				return err
			}
			if err := exec(q.AddUserRoles(ctx, dbsqlc.AddUserRolesParams{TenantID: tenantID, UserID: entraID,
				Roles: *p.Roles, At: now})); err != nil {
				return err
			}
		}
		if !changed {
			return nil
		}
		// The next plan decides this user again, from its edited state.
		if err := q.MarkUserDirty(ctx, dbsqlc.MarkUserDirtyParams{TenantID: tenantID, EntraID: entraID}); err != nil {
			return err
		}
		is, err := q.GetAppUser(ctx, dbsqlc.GetAppUserParams{TenantID: tenantID, EntraID: entraID})
		if err != nil {
			return err
		}
		before, after := userDiff(AppUser(was), AppUser(is))
		if err := recordActivity(ctx, q, tenantID, ActivityUpdateUser, entraID, before, after, "", now); err != nil {
			return err
		}
		return q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: tenantID, At: now,
			Change: fmt.Sprintf("user %s (%s) was edited through the API", cur.DisplayName, entraID)})
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
	return list(ctx, s, "list app groups", tenantID, after, limit,
		func(after string, rows int32) ([]AppGroup, error) {
			groups, err := s.q.ListAppGroups(ctx, dbsqlc.ListAppGroupsParams{TenantID: tenantID, After: after, MaxRows: rows})
			return mapRows(groups, func(g dbsqlc.ListAppGroupsRow) AppGroup {
				return AppGroup{EntraID: g.EntraID, DisplayName: g.DisplayName, Kind: g.Kind, Dynamic: g.Dynamic,
					Status: g.Status, EntraMemberCount: int(g.EntraMemberCount), SyncedMemberCount: int(g.SyncedMemberCount),
					LastOK: g.LastOk, LastError: g.LastError, LastResultAt: g.LastResultAt}
			}), err
		},
		func(g AppGroup) string { return g.EntraID })
}

// MaxGroupDetailItems bounds the nested groups and the devices a group's
// details list (the first ones in Entra id order); the counts are whole.
const MaxGroupDetailItems = 1000

// NamedObject is a directory object by id and name.
type NamedObject struct {
	EntraID     string
	DisplayName string
}

// GroupDetail is one group with everything the app shows of it.
type GroupDetail struct {
	AppGroup
	// Enabled is the group's own switch (false: an admin disabled it).
	Enabled bool
	// Mail, Description, MembershipRule and EntraUpdatedAt (Graph's
	// renewedDateTime) follow Entra ID through the plan while the group
	// is enabled, and stay as last synced otherwise.
	Mail           string
	Description    string
	MembershipRule string
	EntraUpdatedAt *time.Time
	// NestedGroups, Devices and Contacts are the group's direct member
	// list in Entra ID as last read (empty for a local group or one
	// deleted in Entra ID). The lists hold at most MaxGroupDetailItems;
	// the counts are whole.
	NestedGroups      []NamedObject
	NestedGroupsCount int
	Devices           []NamedObject
	DevicesCount      int
	Contacts          int
	Roles             []string
	Sharing           []string
}

// GetAppGroup returns one group of the app with its details, or
// ErrNotFound.
func (s *Store) GetAppGroup(ctx context.Context, tenantID, groupID string) (GroupDetail, error) {
	if !isUUID(tenantID) {
		return GroupDetail{}, fmt.Errorf("store: get group of tenant %q: %w", tenantID, ErrNotFound)
	}
	var out GroupDetail
	err := s.inTx(ctx, "get group "+groupID, func(q *dbsqlc.Queries) error {
		g, err := q.GetAppGroup(ctx, dbsqlc.GetAppGroupParams{TenantID: tenantID, EntraID: groupID})
		if err != nil {
			return err
		}
		out = GroupDetail{
			AppGroup: AppGroup{EntraID: g.EntraID, DisplayName: g.DisplayName, Kind: g.Kind, Dynamic: g.Dynamic,
				Status: g.Status, EntraMemberCount: int(g.EntraMemberCount), SyncedMemberCount: int(g.SyncedMemberCount),
				LastOK: g.LastOk, LastError: g.LastError, LastResultAt: g.LastResultAt},
			Enabled: !g.SwitchedOff, Mail: g.Mail, Description: g.Description, MembershipRule: g.MembershipRule,
			EntraUpdatedAt: g.EntraUpdatedAt,
		}
		ids := dbsqlc.GroupNestedGroupsParams{TenantID: tenantID, GroupID: groupID, MaxRows: MaxGroupDetailItems}
		nested, err := q.GroupNestedGroups(ctx, ids)
		if err != nil {
			return err
		}
		out.NestedGroups = mapRows(nested, func(r dbsqlc.GroupNestedGroupsRow) NamedObject { return NamedObject(r) })
		devices, err := q.GroupDevices(ctx, dbsqlc.GroupDevicesParams(ids))
		if err != nil {
			return err
		}
		out.Devices = mapRows(devices, func(r dbsqlc.GroupDevicesRow) NamedObject { return NamedObject(r) })
		n, err := q.GroupMemberTypeCounts(ctx, dbsqlc.GroupMemberTypeCountsParams{TenantID: tenantID, GroupID: groupID})
		if err != nil {
			return err
		}
		out.NestedGroupsCount, out.DevicesCount, out.Contacts = int(n.Groups), int(n.Devices), int(n.Contacts)
		grants, err := groupGrants(ctx, q, tenantID, groupID)
		out.Roles, out.Sharing = grants.Roles, grants.Sharing
		return err
	})
	if err != nil {
		return GroupDetail{}, err
	}
	return out, nil
}

// ListAppGroupMembers returns a page of the Entra ids of the app users in a
// group's nested membership, like ListAppUsers.
func (s *Store) ListAppGroupMembers(ctx context.Context, tenantID, groupID, after string, limit int) ([]string, string, error) {
	if !isUUID(tenantID) {
		return nil, "", fmt.Errorf("store: list group members of tenant %q: %w", tenantID, ErrNotFound)
	}
	limit = clampLimit(limit)
	ids, err := s.q.ListAppGroupMembers(ctx, dbsqlc.ListAppGroupMembersParams{TenantID: tenantID, GroupID: groupID,
		After: after, MaxRows: int32(limit + 1)})
	if err != nil {
		return nil, "", translate(err, "list group members")
	}
	if ids == nil {
		ids = []string{}
	}
	return page(ids, limit, func(id string) string { return id })
}

// list reads a page of a tenant's items with fetch, which returns up to
// rows items after `after`.
func list[T any](ctx context.Context, s *Store, what, tenantID, after string, limit int,
	fetch func(after string, rows int32) ([]T, error), key func(T) string) ([]T, string, error) {
	if !isUUID(tenantID) {
		return nil, "", fmt.Errorf("store: %s of tenant %q: %w", what, tenantID, ErrNotFound)
	}
	limit = clampLimit(limit)
	items, err := fetch(after, int32(limit+1))
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
